//! Signing keys: generation (`keygen`), PKCS#8 PEM private keys, SPKI PEM public keys.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

use p256::elliptic_curve::zeroize::Zeroizing;

use super::{io, ReleaseError};
use verifier::release::PublicKey;

/// Which kind of key `keygen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8032): small, fast, deterministic signatures. The default.
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256, for HSMs and policies that require it.
    P256,
}

/// A private key that signs DSSE envelopes.
pub enum SigningKey {
    /// Ed25519: signs the PAE bytes directly.
    Ed25519(ed25519_dalek::SigningKey),
    /// ECDSA P-256: SHA-256 of the PAE bytes, DER-encoded signature.
    P256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().fingerprint())
    }
}

impl SigningKey {
    /// A new key from the operating system's random number generator.
    pub fn generate(algorithm: KeyAlgorithm) -> SigningKey {
        let mut rng = rand_core::OsRng;
        match algorithm {
            KeyAlgorithm::Ed25519 => {
                SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng))
            }
            KeyAlgorithm::P256 => SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
        }
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), Ed25519 or P-256.
    pub fn load(path: &Path) -> Result<SigningKey, ReleaseError> {
        let pem = fs_err::read_to_string(path).map_err(io(path))?;
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem) {
            return Ok(SigningKey::Ed25519(k));
        }
        p256::ecdsa::SigningKey::from_pkcs8_pem(&pem)
            .map(SigningKey::P256)
            .map_err(|_| ReleaseError::PrivateKey {
                path: path.to_owned(),
            })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::from_ed25519(k.verifying_key()),
            SigningKey::P256(k) => PublicKey::from_p256(*k.verifying_key()),
        }
    }

    /// Signs `message`: Ed25519 over the bytes, or ECDSA P-256 over their SHA-256 (DER).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(message).to_bytes().to_vec()
            }
            SigningKey::P256(k) => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }

    /// The PKCS#8 PEM private key, wiped from memory when dropped.
    fn pkcs8_pem(&self) -> Result<Zeroizing<String>, ReleaseError> {
        let pem = match self {
            SigningKey::Ed25519(k) => k.to_pkcs8_pem(Default::default()),
            SigningKey::P256(k) => k.to_pkcs8_pem(Default::default()),
        };
        pem.map_err(|e| ReleaseError::Parse {
            path: PathBuf::from("(new key)"),
            message: e.to_string(),
        })
    }
}

/// SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of a public key.
pub fn public_pem(key: &PublicKey) -> String {
    let der = key.spki_der();
    // Re-wrapping DER this crate just encoded as PEM cannot fail.
    let doc = ed25519_dalek::pkcs8::spki::Document::try_from(der.as_slice());
    doc.and_then(|d| d.to_pem("PUBLIC KEY", Default::default()))
        .unwrap_or_default()
}

/// What `keygen` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generated {
    /// The private key file (mode 0600).
    pub private_key: PathBuf,
    /// The public key file.
    pub public_key: PathBuf,
    /// `ed25519` or `ecdsa-p256-sha256`.
    pub algorithm: String,
    /// `sha256:<hex>` of the SPKI DER.
    pub fingerprint: String,
}

/// Generates a key into `out` (PKCS#8 PEM, mode 0600) and `out.pub` (SPKI PEM), refusing to
/// overwrite either. Each file is written under a temporary name and linked into place only
/// when complete and only if the name is free.
pub fn keygen(out: &Path, algorithm: KeyAlgorithm) -> Result<Generated, ReleaseError> {
    let public_path = pub_path(out);
    for p in [out, public_path.as_path()] {
        if p.symlink_metadata().is_ok() {
            return Err(ReleaseError::Exists { path: p.to_owned() });
        }
    }
    let key = SigningKey::generate(algorithm);
    let public = key.public();
    let secret = key.pkcs8_pem()?;
    write_new(out, secret.as_bytes(), 0o600)?;
    write_new(&public_path, public_pem(&public).as_bytes(), 0o644)?;
    Ok(Generated {
        private_key: out.to_owned(),
        public_key: public_path,
        algorithm: public.algorithm().to_string(),
        fingerprint: public.fingerprint().to_string(),
    })
}

/// `KEY.pub` beside `KEY`.
pub fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ReleaseError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // The temporary file is created with mode 0600, so the secret is never world-readable.
    let mut tmp = tempfile::Builder::new()
        .prefix(".enclave-builder-key.")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io(tmp.path()))?;
    let perm = std::os::unix::fs::PermissionsExt::from_mode(mode);
    fs_err::set_permissions(tmp.path(), perm).map_err(io(tmp.path()))?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            ReleaseError::Exists {
                path: path.to_owned(),
            }
        } else {
            ReleaseError::Io {
                path: path.to_owned(),
                source: e.error,
            }
        }
    })?;
    Ok(())
}

//! Public keys (Ed25519, ECDSA P-256) read from SubjectPublicKeyInfo, and their fingerprints.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use ed25519_dalek::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use sha2::{Digest as _, Sha256};

use super::hex;

/// A key's identity: sha256 of its SubjectPublicKeyInfo DER, as this crate encodes it
/// (the uncompressed point for P-256). Displayed as `sha256:<hex>`, the form a policy pins;
/// the bare hex is the DSSE `keyid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of SPKI DER bytes (not checked to be a key).
    pub fn of_spki_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The 64 lowercase hex digits (the DSSE `keyid`).
    pub fn hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The first 16 hex digits, for file names (`rebuild-<short>.intoto.json`).
    pub fn short(&self) -> String {
        let mut h = self.hex();
        h.truncate(16);
        h
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl FromStr for Fingerprint {
    type Err = KeyError;

    /// Parses `sha256:<64 hex digits>` (lowercase or uppercase).
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let hex_part = s.strip_prefix("sha256:").ok_or(KeyError::FingerprintForm)?;
        hex::decode32(hex_part)
            .map(Fingerprint)
            .ok_or(KeyError::FingerprintForm)
    }
}

/// The signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 (RFC 8032), signing the message itself.
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256; signatures are DER-encoded.
    P256,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::P256 => "ecdsa-p256-sha256",
        })
    }
}

/// A public key that can verify signatures, with its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: Key,
    fingerprint: Fingerprint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

/// Why a key or fingerprint was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not an Ed25519 or P-256 SubjectPublicKeyInfo.
    NotAKey,
    /// The text is not a `-----BEGIN PUBLIC KEY-----` PEM block.
    NotPem,
    /// A fingerprint is not `sha256:` and 64 hex digits.
    FingerprintForm,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::NotAKey => {
                "not an Ed25519 or ECDSA P-256 public key (SubjectPublicKeyInfo DER expected)"
            }
            KeyError::NotPem => {
                "not a PEM public key (expected a `-----BEGIN PUBLIC KEY-----` block, as `enclave-builder keygen` writes to KEY.pub)"
            }
            KeyError::FingerprintForm => {
                "not a key fingerprint (expected `sha256:` followed by 64 hex digits)"
            }
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for KeyError {}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo (DER), Ed25519 or P-256.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::from_ed25519(k));
        }
        let k = p256::PublicKey::from_public_key_der(der).map_err(|_| KeyError::NotAKey)?;
        Ok(PublicKey::from_p256(p256::ecdsa::VerifyingKey::from(&k)))
    }

    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM block (SPKI).
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::from_ed25519(k));
        }
        match p256::PublicKey::from_public_key_pem(pem) {
            Ok(k) => Ok(PublicKey::from_p256(p256::ecdsa::VerifyingKey::from(&k))),
            Err(_) if !pem.contains("-----BEGIN PUBLIC KEY-----") => Err(KeyError::NotPem),
            Err(_) => Err(KeyError::NotAKey),
        }
    }

    /// An Ed25519 key from its 32-byte encoding (RFC 8032 section 5.1.5).
    pub fn from_ed25519_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(PublicKey::from_ed25519)
            .map_err(|_| KeyError::NotAKey)
    }

    /// Wraps an Ed25519 verifying key.
    pub fn from_ed25519(key: ed25519_dalek::VerifyingKey) -> PublicKey {
        // Encoding a 32-byte key into its fixed SPKI template cannot fail.
        let der = key
            .to_public_key_der()
            .map(|d| d.into_vec())
            .unwrap_or_default();
        PublicKey {
            fingerprint: Fingerprint::of_spki_der(&der),
            key: Key::Ed25519(key),
        }
    }

    /// Wraps a P-256 verifying key.
    pub fn from_p256(key: p256::ecdsa::VerifyingKey) -> PublicKey {
        let der = p256::PublicKey::from(&key)
            .to_public_key_der()
            .map(|d| d.into_vec())
            .unwrap_or_default();
        PublicKey {
            fingerprint: Fingerprint::of_spki_der(&der),
            key: Key::P256(key),
        }
    }

    /// The SubjectPublicKeyInfo DER this crate fingerprints.
    pub fn spki_der(&self) -> Vec<u8> {
        let der = match &self.key {
            Key::Ed25519(k) => k.to_public_key_der(),
            Key::P256(k) => p256::PublicKey::from(k).to_public_key_der(),
        };
        der.map(|d| d.into_vec()).unwrap_or_default()
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.key {
            Key::Ed25519(_) => Algorithm::Ed25519,
            Key::P256(_) => Algorithm::P256,
        }
    }

    /// Whether `sig` is a valid signature of `msg`: Ed25519 over the message (strict: no
    /// small-order keys, canonical S), or ECDSA P-256 SHA-256 with a DER-encoded signature.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            Key::Ed25519(k) => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(s) => k.verify_strict(msg, &s).is_ok(),
                Err(_) => false,
            },
            Key::P256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                match p256::ecdsa::Signature::from_der(sig) {
                    Ok(s) => k.verify(msg, &s).is_ok(),
                    Err(_) => false,
                }
            }
        }
    }
}

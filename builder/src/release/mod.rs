//! Releases: keys ([`keys`]), the publisher's signed statements ([`sign`]), rebuilders'
//! attestations ([`attest`]), a client's policy check of a release directory ([`check`]),
//! what changed between two releases ([`diff`]), and publishing to an OCI registry and
//! fetching back ([`publish`]).
//!
//! Publishing: [`layout`] defines the artifact (media types, the release and referrer
//! manifests: pure functions of the files), [`reference`] parses
//! `HOST/REPO[:TAG][@sha256:...]`, [`auth`] finds credentials where container tools keep them,
//! [`registry`] is the only module that touches the network, and [`publish`] sequences `push`
//! and `pull`.
//!
//! The formats and the decision live in the `verifier` crate (`verifier::release`), which a
//! client embeds; this module only reads and writes files around it.
//!
//! ```text
//! build DIR ──sign DIR --key K──▶ DIR/release.intoto.json, DIR/provenance.intoto.json,
//!                                 DIR/publisher-<fp16>.pub
//! verify M --record DIR/record.json --attest R ──▶ rebuild-<fp16>.intoto.json (+ .pub)
//! release check DIR --policy P ──▶ verdict (exit 9 unless the policy holds)
//! ```

pub mod attest;
pub mod auth;
pub mod check;
pub mod diff;
pub mod keys;
pub mod layout;
pub mod publish;
pub mod reference;
pub mod registry;
pub mod sign;

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use verifier::release::{Fingerprint, PublicKey, Sha256};

/// The release statement's file name in a release directory.
pub const RELEASE_FILE: &str = "release.intoto.json";
/// The SLSA provenance statement's file name.
pub const PROVENANCE_FILE: &str = "provenance.intoto.json";
/// Signed statements (`ENVELOPE_SUFFIX`) and public keys shipped with a release
/// (`KEY_SUFFIX`) are never subjects; `push` attaches both as referrers.
pub use layout::{ENVELOPE_SUFFIX, KEY_SUFFIX};

/// Everything that can go wrong around a release, each naming its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `keygen` would overwrite a key.
    #[error("{path} already exists; keygen never overwrites a key (choose another --out, or move the old key away deliberately)")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A private key file is not a PKCS#8 Ed25519 or P-256 key.
    #[error("{path} is not a PKCS#8 PEM Ed25519 or ECDSA P-256 private key (`enclave-builder keygen --out KEY` writes one)")]
    PrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A public key file is not an SPKI PEM key.
    #[error("{path}: {source}")]
    PublicKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: verifier::release::KeyError,
    },
    /// A JSON or TOML file does not parse.
    #[error("{path} does not parse: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A file of the build output is not what `record.json` lists.
    #[error("{path}: {problem}; the directory is not the build output record.json describes, refusing to sign (rebuild it, or remove the stray file)")]
    NotTheRecordedOutput {
        /// The file.
        path: PathBuf,
        /// What differs.
        problem: String,
    },
    /// A policy entry is neither a key file nor a fingerprint.
    #[error("{path}: {problem}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, renamed into
/// place only when complete (replacing an older file of that name).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReleaseError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".enclave-builder.")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io(tmp.path()))?;
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    fs_err::set_permissions(tmp.path(), mode).map_err(io(tmp.path()))?;
    tmp.persist(path).map_err(|e| ReleaseError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

/// The subjects of a release directory: every regular file except envelopes and keys, with
/// its sha256 and size, sorted by name. Subdirectories and other file types are refused.
pub fn subject_files(dir: &Path) -> Result<Vec<(String, Sha256, u64)>, ReleaseError> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(ReleaseError::NotTheRecordedOutput {
                path,
                problem: "the file name is not UTF-8".into(),
            });
        };
        if name.ends_with(ENVELOPE_SUFFIX) || name.ends_with(KEY_SUFFIX) {
            continue;
        }
        let ty = entry.file_type().map_err(io(&path))?;
        if !ty.is_file() {
            return Err(ReleaseError::NotTheRecordedOutput {
                path,
                problem: "not a regular file (a release directory holds only files)".into(),
            });
        }
        let (digest, size) = crate::pin::hash_file(&path).map_err(io(&path))?;
        out.push((name, Sha256(*digest.as_bytes()), size));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

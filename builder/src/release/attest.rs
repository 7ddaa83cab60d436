//! `verify --attest`: an independent rebuilder's signed statement that its rebuild of a
//! published record was identical.

use std::path::{Path, PathBuf};

use measurements::record::Record;
use serde_json::json;
use verifier::release::{Sha256, Statement, REBUILD_PREDICATE_TYPE, RECORD_NAME};

use super::keys::{public_pem, SigningKey};
use super::sign::envelope_json;
use super::{io, write_atomic, ReleaseError, ENVELOPE_SUFFIX};

/// How the rebuild was made, as the attestation states it.
pub const CONDITIONS: &str = "a fresh build of the manifest by this builder into a new temporary directory under TMPDIR, on the rebuilder's machine, compared field by field with the published record.json (inputs, outputs, rootfs, disks, kernel command line, measurements)";

/// What was attested.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attested {
    /// The envelope written.
    pub attestation: PathBuf,
    /// The rebuilder's public key, written beside it.
    pub public_key: PathBuf,
    /// The key's fingerprint.
    pub fingerprint: String,
}

/// The default attestation file name for a key: `rebuild-<first 16 hex of fingerprint>.intoto.json`.
pub fn default_name(key: &SigningKey) -> PathBuf {
    PathBuf::from(format!(
        "rebuild-{}{ENVELOPE_SUFFIX}",
        key.public().fingerprint().short()
    ))
}

/// Signs a rebuild statement over the published record's outputs and the record itself.
/// Call only after a successful verification; `builder_differences` lists the `$.builder`
/// paths that differed (reported, not a failure).
pub fn attest(
    record_path: &Path,
    key: &SigningKey,
    out: &Path,
    builder_differences: &[String],
) -> Result<Attested, ReleaseError> {
    let bytes = fs_err::read(record_path).map_err(io(record_path))?;
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| ReleaseError::Parse {
        path: record_path.to_owned(),
        message: e.to_string(),
    })?;
    let record_sha256 = Sha256::of(&bytes);
    let mut subjects: Vec<(String, Sha256)> = record
        .outputs
        .iter()
        .map(|o| (o.name.clone(), Sha256(*o.sha256.as_bytes())))
        .collect();
    subjects.push((RECORD_NAME.into(), record_sha256));
    subjects.sort();
    let predicate = json!({
        "builder": { "name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION") },
        "published_record_sha256": record_sha256.to_string(),
        "manifest_sha256": record.manifest_sha256.to_hex(),
        "conditions": CONDITIONS,
        "builder_differences": builder_differences,
        "result": "identical",
    });
    let statement = Statement::new(&subjects, REBUILD_PREDICATE_TYPE, predicate);
    let public = key.public();
    let public_key = key_path_beside(out);
    write_atomic(&public_key, public_pem(&public).as_bytes())?;
    write_atomic(out, &envelope_json(&statement, key))?;
    Ok(Attested {
        attestation: out.to_owned(),
        public_key,
        fingerprint: public.fingerprint().to_string(),
    })
}

/// `X.intoto.json` -> `X.pub`; any other name gets `.pub` appended.
fn key_path_beside(out: &Path) -> PathBuf {
    let s = out.to_string_lossy();
    match s.strip_suffix(ENVELOPE_SUFFIX) {
        Some(stem) => PathBuf::from(format!("{stem}.pub")),
        None => super::keys::pub_path(out),
    }
}

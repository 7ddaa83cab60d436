//! `release check`: reads a release directory and a policy file, and asks
//! `verifier::release::check_release` for the verdict.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use verifier::release::{
    check_release, Policy, PublicKey, Release, ReleaseVerdict, Sha256, TrustedKey, RECORD_NAME,
    RELEASE_PREDICATE_TYPE,
};

use super::{io, subject_files, ReleaseError, ENVELOPE_SUFFIX, KEY_SUFFIX};

/// The policy file (TOML), as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// Paths to `.pub` files (relative to the policy file) or `sha256:<hex>` fingerprints.
    publisher_keys: Vec<String>,
    #[serde(default)]
    rebuilder_keys: Vec<String>,
    #[serde(default)]
    rebuilders_required: usize,
    predicate_type: Option<String>,
}

/// The error [`crate::run`] returns when a release does not satisfy the policy (exit 9).
#[derive(Debug, thiserror::Error)]
#[error("the release does not satisfy the policy: {failed} check(s) failed")]
pub struct ReleaseRejected {
    /// How many checks failed.
    pub failed: usize,
}

/// Reads a policy file: each key entry is a `.pub` path relative to the policy's directory,
/// or a `sha256:<hex>` fingerprint.
pub fn load_policy(path: &Path) -> Result<Policy, ReleaseError> {
    let text = fs_err::read_to_string(path).map_err(io(path))?;
    let file: PolicyFile = toml::from_str(&text).map_err(|e| ReleaseError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let keys = |entries: &[String]| -> Result<Vec<TrustedKey>, ReleaseError> {
        entries.iter().map(|e| trusted_key(path, base, e)).collect()
    };
    let policy = Policy {
        publisher_keys: keys(&file.publisher_keys)?,
        rebuilder_keys: keys(&file.rebuilder_keys)?,
        rebuilders_required: file.rebuilders_required,
        predicate_type: file
            .predicate_type
            .unwrap_or_else(|| RELEASE_PREDICATE_TYPE.into()),
    };
    if policy.publisher_keys.is_empty() {
        return Err(ReleaseError::Policy {
            path: path.to_owned(),
            problem: "publisher_keys is empty: name at least one publisher key".into(),
        });
    }
    if policy.rebuilders_required > policy.rebuilder_keys.len() {
        return Err(ReleaseError::Policy {
            path: path.to_owned(),
            problem: format!(
                "rebuilders_required = {} but only {} rebuilder_keys are listed: it can never hold",
                policy.rebuilders_required,
                policy.rebuilder_keys.len()
            ),
        });
    }
    Ok(policy)
}

fn trusted_key(policy: &Path, base: &Path, entry: &str) -> Result<TrustedKey, ReleaseError> {
    if entry.starts_with("sha256:") {
        return entry
            .parse()
            .map(TrustedKey::Fingerprint)
            .map_err(|e| ReleaseError::Policy {
                path: policy.to_owned(),
                problem: format!("{entry:?}: {e}"),
            });
    }
    let path = base.join(entry);
    Ok(TrustedKey::Key(read_public_key(&path)?))
}

/// Reads an SPKI PEM public key file.
pub fn read_public_key(path: &Path) -> Result<PublicKey, ReleaseError> {
    let pem = fs_err::read_to_string(path).map_err(io(path))?;
    PublicKey::from_pem(&pem).map_err(|source| ReleaseError::PublicKey {
        path: path.to_owned(),
        source,
    })
}

/// A release directory read into memory (digests of the build output; envelopes and keys).
#[derive(Debug, Clone)]
pub struct ReleaseDir {
    /// The directory.
    pub dir: PathBuf,
    /// Every subject file and its sha256.
    pub files: Vec<(String, Sha256)>,
    /// `record.json`'s bytes (empty if absent: the verdict then fails).
    pub record: Vec<u8>,
    /// Every `*.intoto.json`.
    pub envelopes: Vec<(String, Vec<u8>)>,
    /// Every `*.pub` that parses as a key.
    pub keys: Vec<PublicKey>,
}

/// Reads a release directory.
pub fn read_release_dir(dir: &Path) -> Result<ReleaseDir, ReleaseError> {
    let files = subject_files(dir)?
        .into_iter()
        .map(|(n, d, _)| (n, d))
        .collect();
    let record_path = dir.join(RECORD_NAME);
    let record = if record_path.is_file() {
        fs_err::read(&record_path).map_err(io(&record_path))?
    } else {
        Vec::new()
    };
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push((name.to_owned(), entry.path()));
        }
    }
    names.sort();
    let mut envelopes = Vec::new();
    let mut keys = Vec::new();
    for (name, path) in names {
        if name.ends_with(ENVELOPE_SUFFIX) {
            envelopes.push((name, fs_err::read(&path).map_err(io(&path))?));
        } else if name.ends_with(KEY_SUFFIX) {
            keys.push(read_public_key(&path)?);
        }
    }
    Ok(ReleaseDir {
        dir: dir.to_owned(),
        files,
        record,
        envelopes,
        keys,
    })
}

/// Checks a release directory against a policy.
pub fn check_release_dir(dir: &Path, policy: &Policy) -> Result<ReleaseVerdict, ReleaseError> {
    let r = read_release_dir(dir)?;
    Ok(check_release(
        &Release {
            files: &r.files,
            record: &r.record,
            envelopes: &r.envelopes,
            keys: &r.keys,
        },
        policy,
    ))
}

/// The human report: every check, then the pinned measurement set.
pub fn render(v: &ReleaseVerdict) -> String {
    let mut s = v.verdict.to_string();
    s.push_str("pinned measurements (from the signed record):\n");
    for m in &v.measurements {
        for (field, value) in &m.values {
            let value = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            s.push_str(&format!(
                "  {} ({}) {field} = {value}\n",
                m.profile, m.platform
            ));
        }
    }
    s.push_str(if v.passed {
        "release ACCEPTED: the policy holds\n"
    } else {
        "release REJECTED: the policy does not hold\n"
    });
    s
}

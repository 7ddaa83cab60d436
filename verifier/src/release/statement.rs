//! in-toto Statement v1 (in-toto/attestation `spec/v1/statement.md`): subjects (name and
//! sha256) and a typed predicate, and the predicate types this project signs.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::hex;

/// The statement `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// A publisher's release: the predicate is the build's `record.json`, parsed. Changing the
/// predicate's meaning requires a new version (`...:v2`).
pub const RELEASE_PREDICATE_TYPE: &str = "urn:enclave-builder:release:v1";
/// An independent rebuilder's attestation that its rebuild was identical.
pub const REBUILD_PREDICATE_TYPE: &str = "urn:enclave-builder:rebuild:v1";
/// SLSA build provenance v1.
pub const PROVENANCE_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// A sha256 digest (32 bytes; lowercase hex when shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        use sha2::Digest as _;
        Sha256(sha2::Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl FromStr for Sha256 {
    type Err = StatementError;

    /// 64 hex digits.
    fn from_str(s: &str) -> Result<Sha256, StatementError> {
        hex::decode32(s)
            .map(Sha256)
            .ok_or_else(|| StatementError::Digest(s.into()))
    }
}

/// An in-toto statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// The artifacts the predicate is about.
    pub subject: Vec<Subject>,
    /// What the predicate means (a URI).
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim itself.
    pub predicate: Value,
}

/// One subject: a file name and its digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The file name in the release directory.
    pub name: String,
    /// Algorithm -> lowercase hex; `sha256` is required here.
    pub digest: BTreeMap<String, String>,
}

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementError {
    /// Not JSON of the statement's shape.
    Json(String),
    /// `_type` is not [`STATEMENT_TYPE`].
    Type(String),
    /// A subject has no `sha256` digest.
    NoSha256(String),
    /// A digest is not 64 hex digits.
    Digest(String),
    /// Two subjects have one name.
    Duplicate(String),
}

impl fmt::Display for StatementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatementError::Json(e) => write!(f, "not an in-toto statement: {e}"),
            StatementError::Type(t) => write!(f, "_type is {t:?}, expected {STATEMENT_TYPE:?}"),
            StatementError::NoSha256(n) => write!(f, "subject {n:?} has no sha256 digest"),
            StatementError::Digest(d) => write!(f, "{d:?} is not a sha256 digest (64 hex digits)"),
            StatementError::Duplicate(n) => write!(f, "subject {n:?} is listed twice"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StatementError {}

impl Statement {
    /// A statement over `subjects` (name, sha256), in the given order.
    pub fn new(subjects: &[(String, Sha256)], predicate_type: &str, predicate: Value) -> Statement {
        Statement {
            type_: STATEMENT_TYPE.into(),
            subject: subjects
                .iter()
                .map(|(name, d)| Subject {
                    name: name.clone(),
                    digest: BTreeMap::from([(String::from("sha256"), format!("{d}"))]),
                })
                .collect(),
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// Parses a statement and checks `_type`.
    pub fn parse(bytes: &[u8]) -> Result<Statement, StatementError> {
        let s: Statement =
            serde_json::from_slice(bytes).map_err(|e| StatementError::Json(format!("{e}")))?;
        if s.type_ != STATEMENT_TYPE {
            return Err(StatementError::Type(s.type_));
        }
        Ok(s)
    }

    /// The subjects as name -> sha256; refuses duplicates and subjects without sha256.
    pub fn subjects(&self) -> Result<BTreeMap<String, Sha256>, StatementError> {
        let mut out = BTreeMap::new();
        for s in &self.subject {
            let d = s
                .digest
                .get("sha256")
                .ok_or_else(|| StatementError::NoSha256(s.name.clone()))?;
            if out.insert(s.name.clone(), d.parse()?).is_some() {
                return Err(StatementError::Duplicate(s.name.clone()));
            }
        }
        Ok(out)
    }
}

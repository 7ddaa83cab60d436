//! Signed releases: DSSE envelopes ([`dsse`]) holding in-toto statements ([`statement`]),
//! signed by Ed25519 or ECDSA P-256 keys ([`keys`]), judged against a client's [`Policy`]
//! by [`check_release`].
//!
//! A release directory holds the build output (every file `record.json` lists, and
//! `record.json` itself), `release.intoto.json` (the publisher's statement: subjects = those
//! files, predicate = the record, predicateType [`RELEASE_PREDICATE_TYPE`]),
//! `provenance.intoto.json` (SLSA provenance v1 over the same subjects) and any number of
//! `rebuild-*.intoto.json` (independent rebuilders' attestations, predicateType
//! [`REBUILD_PREDICATE_TYPE`]), and the signers' public keys as `*.pub`.

mod dsse;
mod hex;
mod keys;
mod policy;
mod statement;

pub use dsse::{pae, Envelope, EnvelopeError, Signature, SignatureReport, Signer, PAYLOAD_TYPE};
pub use keys::{Algorithm, Fingerprint, KeyError, PublicKey};
pub use policy::{
    check_release, PinnedMeasurement, Policy, Release, ReleaseVerdict, TrustedKey, RECORD_NAME,
};
pub use statement::{
    Sha256, Statement, StatementError, Subject, PROVENANCE_PREDICATE_TYPE, REBUILD_PREDICATE_TYPE,
    RELEASE_PREDICATE_TYPE, STATEMENT_TYPE,
};

#[cfg(test)]
mod tests;

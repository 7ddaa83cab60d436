//! The measurements crate's integration tests, one binary (STYLE 15).

// SEV-SNP: known-answer vectors, malformed firmware, parser robustness.
mod snp;

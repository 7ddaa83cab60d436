//! The verifier's integration tests: one binary, a `mod` per area (STYLE 15).

// Session binding: the convention, recomputed independently.
mod binding;
// SEV-SNP: a real Milan report with AMD's chain, and reports built from the ABI layout.
mod snp;
// TDX: dcap-qvl's sample quote and collateral, and modified bodies.
mod tdx;
// Shared helpers: test data, the report builder.
mod util;
// vTPM: real swtpm quotes (ECDSA and RSA AKs) and their tamperings.
mod tpm;

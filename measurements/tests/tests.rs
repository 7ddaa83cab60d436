//! Integration tests of `measurements` against independent reference tools and vectors.

// Shared helpers: fixture paths, kernel extraction, running reference tools.
mod util;

// Intel TDX: MRTD (both page-add orders), RTMR1, RTMR2 vs. the spec walk-through script.
mod tdx;
// vTPM: PCR 11 vs systemd-measure, Authenticode vs osslsigncode, PCR 4, UKI extraction.
mod tpm;
// SEV-SNP: known-answer vectors, malformed firmware, parser robustness.
mod snp;

//! The builder's integration tests, one binary (STYLE 15).

// `measure snp` against sev-snp-measure 0.0.13, run for real.
mod measure_snp;

//! `enclave-builder measure ...`: read the inputs, call `measurements`, print the values.
//! (Minimal module list on the `tdxtpm` branch; the integrator merges it with the SNP one.)

pub mod pcr;
pub mod tdx;

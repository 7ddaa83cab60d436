//! `enclave-builder measure ...`: launch measurements from files on disk, and the build's
//! launch-measurement stage ([`launch`]).
//!
//! This module only reads files and formats results; every digest is computed by the pure
//! `measurements` crate. The command line is parsed in `cli` (`cli::MeasureCommand`) and
//! handed over as these plain options.

pub mod launch;
pub mod pcr;
mod snp;
pub mod tdx;

pub use snp::{parse_u32, parse_u64, parse_vmm, OutputFormat, SnpMode, SnpOptions, VmmKind};

/// What `measure` computes, per platform.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MeasureOptions {
    /// AMD SEV-SNP / SEV-ES / SEV launch digest.
    Snp(SnpOptions),
    /// Intel TDX MRTD, RTMR1 and RTMR2.
    Tdx(tdx::TdxOptions),
    /// vTPM PCR 11 and PCR 4.
    Pcr(pcr::PcrOptions),
}

/// Runs a `measure` subcommand, writing its result to `out`.
pub fn run(cmd: &MeasureOptions, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match cmd {
        MeasureOptions::Snp(args) => snp::run(args, out),
        MeasureOptions::Tdx(args) => tdx::run_tdx(args, out),
        MeasureOptions::Pcr(args) => pcr::run_pcr(args, out),
    }
}

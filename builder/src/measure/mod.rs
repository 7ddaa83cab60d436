//! `enclave-builder measure ...`: launch measurements from files on disk.
//!
//! This module only reads files and formats results; every digest is computed by the pure
//! `measurements` crate.

pub mod launch;
pub mod pcr;
mod snp;
pub mod tdx;

pub use snp::{OutputFormat, SnpArgs, SnpMode, VmmKind};

/// The platforms `measure` can compute a launch measurement for.
#[derive(Debug, clap::Subcommand)]
#[non_exhaustive]
pub enum MeasureCommand {
    /// AMD SEV-SNP / SEV-ES / SEV launch digest (flags as in sev-snp-measure 0.0.13).
    Snp(SnpArgs),
    /// Intel TDX MRTD, RTMR1 and RTMR2 for direct boot with OVMF (TDVF).
    Tdx(tdx::TdxArgs),
    /// vTPM PCR 11 (systemd-stub, per UKI section and boot phase) and PCR 4.
    Pcr(pcr::PcrArgs),
}

/// Runs a `measure` subcommand, writing its result to `out`.
pub fn run(cmd: &MeasureCommand, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match cmd {
        MeasureCommand::Snp(args) => snp::run(args, out),
        MeasureCommand::Tdx(args) => tdx::run_tdx(args, out),
        MeasureCommand::Pcr(args) => pcr::run_pcr(args, out),
    }
}

//! `enclave-builder measure ...`: launch measurements from files on disk.
//!
//! This module only reads files and formats results; every digest is computed by the pure
//! `measurements` crate.

mod snp;

pub use snp::{OutputFormat, SnpArgs, SnpMode, VmmKind};

/// The platforms `measure` can compute a launch measurement for.
#[derive(Debug, clap::Subcommand)]
#[non_exhaustive]
pub enum MeasureCommand {
    /// AMD SEV-SNP / SEV-ES / SEV launch digest (flags as in sev-snp-measure 0.0.13).
    Snp(SnpArgs),
}

/// Runs a `measure` subcommand, writing its result to `out`.
pub fn run(cmd: &MeasureCommand, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match cmd {
        MeasureCommand::Snp(args) => snp::run(args, out),
    }
}

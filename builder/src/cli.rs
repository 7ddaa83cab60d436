//! The raw command line (clap derive only; no I/O). `///` comments are the `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Build bit-identical confidential-VM images from a pinned manifest and compute the launch
/// measurements the hardware will report for them.
///
/// Exit codes: 0 success; 1 the build or command failed; 2 usage error; 3 an input was
/// refused (missing or wrong pin, corrupt or hostile layer, bad manifest).
#[derive(Debug, Parser)]
#[command(name = "enclave-builder", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image a manifest describes.
    ///
    /// Writes DIR/rootfs.img (EROFS root file system with its dm-verity hash tree appended),
    /// DIR/cmdline (the kernel command line, with the verity root hash) and DIR/record.json
    /// (inputs, outputs, verity parameters). The directory is assembled beside DIR and renamed
    /// into place only when complete. Progress goes to stderr.
    Build(BuildArgs),
    /// Compute a launch measurement from the files a VMM loads.
    ///
    /// Pure computation: nothing is built. `snp` takes sev-snp-measure's flags, `tdx` prints
    /// MRTD and RTMR1/2, `pcr` predicts vTPM PCR 11 and PCR 4 for a UKI. `--json` everywhere.
    Measure {
        /// The platform.
        #[command(subcommand)]
        command: Box<crate::measure::MeasureCommand>,
    },
    /// Build the guest kernel reproducibly from pinned source and `kernel-config/`.
    Kernel {
        /// What to do.
        #[command(subcommand)]
        command: KernelCommand,
    },
}

/// `kernel` subcommands.
#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Compile the pinned kernel source with the checked-in config (about 10 minutes on two
    /// cores), cached by the digest of every input. Prints the bzImage's sha256.
    Build(Box<crate::kernel::KernelBuildArgs>),
}

/// `build` arguments.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The manifest (TOML). Paths inside it are relative to its own directory.
    pub manifest: PathBuf,
    /// The output directory to create.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the record as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Replace DIR if it holds a previous build output.
    #[arg(long)]
    pub force: bool,
    /// No progress messages on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

//! The raw command line (clap derive only; no I/O). `///` comments are the `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Build bit-identical confidential-VM images from a pinned manifest and compute the launch
/// measurements the hardware will report for them.
///
/// Exit codes: 0 success; 1 the build or command failed; 2 usage error; 3 an input was
/// refused (missing or wrong pin, corrupt or hostile layer, bad manifest); 4 not reproducible
/// (`check`: the two builds differ; `verify`: same inputs, other artifacts); 5 `verify`: the
/// rebuild used other inputs than the published record; 6 `verify`: launch measurements differ;
/// 7 `lint` found errors; 8 `attest check`: a check failed.
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
    /// DIR/disk-NAME.img for each data disk (same format), DIR/cmdline (the kernel command
    /// line, with every verity root hash), DIR/vmlinuz, DIR/initrd.img, DIR/OVMF.fd,
    /// DIR/run-qemu.sh (local QEMU boot) and DIR/record.json (inputs with their contents,
    /// outputs, verity parameters, launch measurements per platform profile). The directory
    /// is assembled beside DIR and renamed into place only when complete. Progress goes to
    /// stderr.
    Build(BuildArgs),
    /// CI gate: build the manifest twice under different conditions and compare every artifact.
    ///
    /// The two builds run as separate processes of this binary. Build B differs from build A
    /// by every enabled variation: clock (faketime -f +3y, if installed), tz, locale (LC_ALL),
    /// umask, path (working and output directories), tmpdir, home, threads
    /// (RAYON_NUM_THREADS=1 vs at least 4), order (a no-op: the builder enumerates no
    /// directory). Differences are reported by format: a path and field inside the EROFS
    /// file system or the dm-verity area, a JSON path in record.json, a character offset in
    /// cmdline, a byte offset and ELF/PE section elsewhere.
    ///
    /// Exit codes: 0 every artifact identical; 4 not reproducible; 1 a build failed.
    Check(CheckArgs),
    /// Rebuild from the manifest and compare with a published record.json.
    ///
    /// Compares every input digest, artifact digest, rootfs/verity/cmdline field and launch
    /// measurement, and names each mismatch by JSON path with both values. The rebuild goes
    /// to a temporary directory under TMPDIR.
    ///
    /// Exit codes: 0 verified; 5 the inputs differ (the rebuilder has other inputs); 4 same
    /// inputs, other artifacts (not reproducible); 6 only measurements differ; 3 an input
    /// was refused; 1 the rebuild failed.
    Verify(VerifyArgs),
    /// Check a manifest for unpinned inputs, build-time Python bytecode and host-dependent files.
    ///
    /// Reports every input without a pin (with the exact TOML line to add, holding the digest
    /// of the file as found), wrong pins, missing files and Rust workspaces without
    /// Cargo.lock; timestamp-based `.pyc` files in layers, wheels and files; per-host or
    /// per-build paths (/etc/machine-id, SSH host keys, logs, caches...) and inputs read from
    /// absolute host paths or /proc, /sys, /dev, /tmp. Nothing is built.
    ///
    /// Exit codes: 0 no errors (warnings and notes allowed); 7 errors found; 3 the manifest
    /// itself cannot be parsed.
    Lint(LintArgs),
    /// Compute a launch measurement from the files a VMM loads.
    ///
    /// Pure computation: nothing is built. `snp` takes sev-snp-measure's flags, `tdx` prints
    /// MRTD and RTMR1/2, `pcr` predicts vTPM PCR 11 and PCR 4 for a UKI. `--json` everywhere.
    Measure {
        /// The platform.
        #[command(subcommand)]
        command: Box<crate::measure::MeasureCommand>,
    },
    /// Check attestation evidence (an SEV-SNP report) against a published release.
    Attest {
        /// What to do.
        #[command(subcommand)]
        command: Box<crate::attest::AttestCommand>,
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

/// `lint` arguments.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// The manifest (TOML).
    pub manifest: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `check` arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The manifest (TOML).
    pub manifest: PathBuf,
    /// Keep both builds in DIR (created, must be empty): DIR/a/out and DIR/b/.../output.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Apply only these variations (comma-separated: clock, tz, locale, umask, path, tmpdir,
    /// home, threads, order).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        conflicts_with = "no_vary"
    )]
    pub vary: Option<Vec<crate::check::Variation>>,
    /// Apply every variation except these (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub no_vary: Option<Vec<crate::check::Variation>>,
    /// No progress messages on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `verify` arguments.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The manifest (TOML) the published image was built from.
    pub manifest: PathBuf,
    /// The published record.json.
    #[arg(long, value_name = "FILE")]
    pub record: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress messages on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

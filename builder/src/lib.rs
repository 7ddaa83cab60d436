//! enclave-builder: bit-identical confidential-VM images from a pinned manifest.
//!
//! Data flows one way, one module per stage:
//!
//! ```text
//! manifest (TOML) ──plan──▶ Plan ──pipeline::verify_inputs──▶ VerifiedInputs (pins checked)
//!     ──pipeline::assemble_tree (tree::apply)──▶ Tree (names, modes, owners, xattrs;
//!                                                contents in the ContentStore)
//!     ──erofs::write──▶ file-system bytes ──verity::build──▶ hash area + root hash
//!     ──disks::build_disks──▶ one EROFS + verity image per data disk (wheels, files)
//!     ──pipeline::build──▶ record.json, cmdline, rootfs.img, disk-*.img renamed into place
//! ```
//!
//! [`lint`] checks a manifest without building it (pins, build-time bytecode, per-host files).
//! [`check`] runs two builds of one manifest in separate processes under different conditions
//! and locates every difference by format; [`verify`] rebuilds and compares with a published
//! record.
//!
//! [`pipeline`] is the only place the stages are sequenced; [`cli`] is the raw command line and
//! [`plan`] resolves it with the manifest. Launch measurements live in the `measurements`
//! crate, which has no build machinery.
//!
//! ```
//! let m = builder::manifest::parse(r#"
//! schema = 1
//! [image]
//! name = "x"
//! version = "1"
//! source_date_epoch = 0
//! [rootfs]
//! layers = []
//! [boot]
//! kernel = { path = "vmlinuz" }
//! firmware = { path = "OVMF.fd" }
//! "#, "x.toml").unwrap();
//! assert_eq!(m.boot.root_device, "/dev/vda");
//! ```
#![forbid(unsafe_code)]

pub mod attest;
pub mod check;
pub mod cli;
pub mod components;
pub mod content;
pub mod disks;
pub mod erofs;
pub mod initramfs;
pub mod inputs;
pub mod kernel;
pub mod lint;
pub mod manifest;
pub mod measure;
pub mod output;
pub mod pin;
pub mod pipeline;
pub mod plan;
pub mod seed;
pub mod tree;
pub mod verify;
pub mod verity;

use std::io::Write;

use anyhow::Context as _;

use cli::{Cli, Command};
pub use pipeline::Progress;

/// Exit code: the build or command failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: an input was refused.
pub const EXIT_INPUT_REFUSED: u8 = 3;
/// Exit code: not reproducible (`check`: the builds differ; `verify`: other artifacts).
pub const EXIT_NOT_REPRODUCIBLE: u8 = 4;
/// Exit code: `verify` rebuilt from other inputs than the published record lists.
pub const EXIT_INPUTS_DIFFER: u8 = 5;
/// Exit code: `verify` found only launch measurements differing.
pub const EXIT_MEASUREMENTS_DIFFER: u8 = 6;
/// Exit code: `lint` found at least one error.
pub const EXIT_LINT_ERRORS: u8 = 7;
/// Exit code: `attest check` found at least one failed check.
pub const EXIT_ATTESTATION_FAILED: u8 = 8;

/// Runs a parsed command line. Machine output goes to `stdout`, progress to `progress`.
pub fn run(cli: Cli, stdout: &mut dyn Write, progress: &dyn Progress) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => {
            let plan = plan::Plan::new(&args.manifest, &args.out, args.force)?;
            let quiet = |_: &str| {};
            let record = pipeline::build(&plan, if args.quiet { &quiet } else { progress })?;
            if args.json {
                stdout.write_all(&pipeline::record_json(&record)?)?;
            } else {
                writeln!(
                    stdout,
                    "{}: rootfs.img {} bytes, verity root hash {}",
                    args.out.display(),
                    record.rootfs.data_size,
                    record.rootfs.verity.root_hash
                )?;
            }
            Ok(())
        }
        Command::Lint(args) => {
            let report = lint::lint_file(&args.manifest)?;
            if args.json {
                serde_json::to_writer_pretty(&mut *stdout, &report)?;
                writeln!(stdout)?;
            } else {
                stdout.write_all(report.render().as_bytes())?;
            }
            if report.failed() {
                Err(lint::LintFailed {
                    errors: report.errors,
                }
                .into())
            } else {
                Ok(())
            }
        }
        Command::Measure { command } => measure::run(&command, stdout),
        Command::Attest { command } => attest::run(&command, stdout),
        Command::Kernel {
            command: cli::KernelCommand::Build(args),
        } => {
            let built = kernel::run_build(&args, &|line: &str| progress.message(line))?;
            writeln!(stdout, "{}  {}", built.sha256, built.out.display())?;
            Ok(())
        }
        Command::Check(args) => {
            let variations = match (&args.vary, &args.no_vary) {
                (Some(v), _) => v.clone(),
                (None, Some(not)) => check::variations::ALL
                    .into_iter()
                    .filter(|v| !not.contains(v))
                    .collect(),
                (None, None) => check::variations::ALL.to_vec(),
            };
            let opts = check::CheckOptions {
                manifest: args.manifest,
                keep: args.keep,
                variations,
                exe: std::env::current_exe().context("locating this executable")?,
            };
            let quiet = |_: &str| {};
            let report = check::check(&opts, if args.quiet { &quiet } else { progress })?;
            if args.json {
                serde_json::to_writer_pretty(&mut *stdout, &report)?;
                writeln!(stdout)?;
            } else {
                stdout.write_all(report.render().as_bytes())?;
            }
            if report.reproducible {
                Ok(())
            } else {
                Err(check::NotReproducible {
                    count: report.differences.len(),
                }
                .into())
            }
        }
        Command::Verify(args) => {
            let opts = verify::VerifyOptions {
                manifest: args.manifest,
                record: args.record,
            };
            let quiet = |_: &str| {};
            let report = verify::verify(&opts, if args.quiet { &quiet } else { progress })?;
            if args.json {
                serde_json::to_writer_pretty(&mut *stdout, &report)?;
                writeln!(stdout)?;
            } else {
                stdout.write_all(report.render().as_bytes())?;
            }
            match report.failure() {
                None => Ok(()),
                Some(f) => Err(f.into()),
            }
        }
    }
}

/// The process exit code for an error from [`run`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.is::<check::NotReproducible>() {
        return EXIT_NOT_REPRODUCIBLE;
    }
    if err.is::<attest::AttestationFailed>() {
        return EXIT_ATTESTATION_FAILED;
    }
    if err.is::<lint::LintFailed>() {
        return EXIT_LINT_ERRORS;
    }
    if let Some(f) = err.downcast_ref::<verify::VerifyFailed>() {
        return f.code;
    }
    let refused = err.chain().any(|e| {
        e.is::<pin::PinErrors>()
            || e.is::<pin::PinError>()
            || e.is::<manifest::Error>()
            || e.is::<inputs::oci_layout::OciLayoutError>()
            || e.is::<inputs::layer::LayerError>()
            || e.is::<inputs::wheel::Error>()
            || e.is::<pipeline::PathTwice>()
            || e.is::<tree::apply::ApplyError>()
    });
    if refused {
        EXIT_INPUT_REFUSED
    } else {
        EXIT_FAILURE
    }
}

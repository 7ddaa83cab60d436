//! enclave-builder: bit-identical confidential-VM images from a pinned manifest.
//!
//! Data flows one way, one module per stage; [`pipeline`] is the only place they are
//! sequenced, and no stage names the sequencer or a later stage (`builder/tests/module_graph.rs`
//! fails on any module cycle):
//!
//! ```text
//! manifest (TOML) ──plan──▶ Plan ──stage_inputs──▶ VerifiedInputs (pins checked)
//!     ──stage_components──▶ built Rust binaries
//!     ──stage_tree (tree::apply, tree::wheel, placement)──▶ Tree (names, modes, owners,
//!                                         xattrs; contents in the content::ContentStore)
//!     ──stage_root_image (verity_image: erofs::write, verity::build)──▶ rootfs.img
//!     ──stage_disks (the same verity_image writer)──▶ disk-*.img
//!     ──stage_boot──▶ cmdline, vmlinuz, initrd.img, OVMF.fd, run-qemu.sh, measurements
//!     ──stage_record──▶ record.json; output::Staging renames the directory into place
//! ```
//!
//! [`lint`] checks a manifest without building it (pins, build-time bytecode, per-host files).
//! [`check`] runs two builds of one manifest in separate processes under different conditions
//! and locates every difference by format ([`diff`]); [`verify`] rebuilds and compares with a
//! published record (the same [`diff`]).
//!
//! [`cli`] is the raw command line and [`plan`] resolves it with the manifest; [`progress`]
//! is where stages report; [`exit`] names the process exit codes. Launch measurements live in
//! the `measurements` crate, which has no build machinery.
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

pub mod check;
pub mod cli;
pub mod components;
pub mod content;
pub mod diff;
pub mod erofs;
pub mod exit;
pub mod initramfs;
#[cfg(feature = "test-inject")]
pub mod inject;
pub mod inputs;
pub mod kernel;
pub mod lint;
pub mod manifest;
pub mod measure;
pub mod output;
pub mod pin;
pub mod pipeline;
pub mod placement;
pub mod plan;
pub mod progress;
pub mod seed;
pub mod stage_boot;
pub mod stage_components;
pub mod stage_disks;
pub mod stage_inputs;
pub mod stage_record;
pub mod stage_root_image;
pub mod stage_tree;
pub mod tree;
pub mod verify;
pub mod verity;
pub mod verity_image;
pub mod workload;

use std::io::Write;

use anyhow::Context as _;

use cli::{Cli, Command};
pub use exit::{
    EXIT_FAILURE, EXIT_INPUTS_DIFFER, EXIT_INPUT_REFUSED, EXIT_LINT_ERRORS,
    EXIT_MEASUREMENTS_DIFFER, EXIT_NOT_REPRODUCIBLE,
};
pub use progress::Progress;

/// Runs a parsed command line. Machine output goes to `stdout`, progress to `progress`.
pub fn run(cli: Cli, stdout: &mut dyn Write, progress: &dyn Progress) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => {
            let plan = plan::Plan::new(&args.manifest, &args.out, args.force)?;
            let quiet = |_: &str| {};
            let record = pipeline::build(&plan, if args.quiet { &quiet } else { progress })?;
            if args.json {
                stdout.write_all(&stage_record::record_json(&record)?)?;
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
            || e.is::<tree::wheel::Error>()
            || e.is::<placement::PathTwice>()
            || e.is::<verify::UnknownRecordSchema>()
            || e.is::<tree::apply::ApplyError>()
    });
    if refused {
        EXIT_INPUT_REFUSED
    } else {
        EXIT_FAILURE
    }
}

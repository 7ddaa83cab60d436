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
//!     ──stage_root_image (verity_image: erofs::write, verity::tee)──▶ rootfs.img
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
//! [`release`] signs a build output (DSSE envelopes holding in-toto statements), writes
//! rebuilders' attestations after `verify`, checks a release directory against a client policy
//! (the decision is `verifier::release::check_release`), compares two releases, and publishes
//! to and fetches from an OCI registry.
//!
//! [`cli`] is the raw command line and [`plan`] resolves it with the manifest; [`progress`]
//! is where stages report; [`exit`] names the process exit codes. Launch measurements live in
//! the `measurements` crate, which has no build machinery.
//!
//! # Modules
//!
//! | area | modules |
//! |---|---|
//! | command line | [`cli`] (the only module that names the argument parser), [`plan`], [`exit`], [`progress`] |
//! | manifest and inputs | [`manifest`], [`inputs`] (OCI layouts, layers), [`pin`], [`components`] (Rust builds) |
//! | the pipeline | [`pipeline`] (the sequencer), [`stage_inputs`], [`stage_components`], [`stage_tree`], [`stage_root_image`], [`stage_disks`], [`stage_boot`], [`stage_record`] |
//! | what the stages use | [`tree`], [`content`], [`placement`], [`workload`], [`seed`], [`verity_image`], [`output`] |
//! | formats | [`erofs`] (writer, and the reader `check` uses), [`verity`], [`initramfs`] |
//! | beside the pipeline | [`kernel`] (`kernel build`), [`lint`], [`check`], [`diff`], [`verify`], [`measure`] (`measure snp\|tdx\|pcr` and the launch-measurement stage), [`attest`] (`attest check`), [`release`] (sign, policy check, diff, push/pull) |
//!
//! Binary parsers read through `measurements::reader`, the one bounds-checked reader.
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
pub mod diff;
pub mod direct;
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
pub mod release;
pub mod seed;
pub mod stage_boot;
pub mod stage_components;
pub mod stage_disks;
pub mod stage_inputs;
pub mod stage_record;
pub mod stage_root_image;
pub mod stage_tree;
pub mod tree;
pub mod uki;
pub mod verify;
pub mod verity;
pub mod verity_image;
pub mod workload;

use std::io::Write;

use anyhow::Context as _;

use cli::{Cli, Command, ReleaseCommand};
pub use exit::{
    EXIT_ATTESTATION_FAILED, EXIT_FAILURE, EXIT_INPUTS_DIFFER, EXIT_INPUT_REFUSED,
    EXIT_LINT_ERRORS, EXIT_MEASUREMENTS_DIFFER, EXIT_NOT_REPRODUCIBLE, EXIT_RELEASE_REJECTED,
    EXIT_TRANSFER_FAILED,
};
pub use progress::Progress;

/// Runs a parsed command line. Machine output goes to `stdout`, progress to `progress`.
pub fn run(cli: Cli, stdout: &mut dyn Write, progress: &dyn Progress) -> anyhow::Result<()> {
    let silent = |_: &str| {};
    let loud = |line: &str| progress.message(line);
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
        Command::Push(args) => registry_command(
            &args.reference,
            args.insecure_http,
            args.json,
            stdout,
            if args.quiet { &silent } else { &loud },
            |reference, conn, progress| {
                if args.attach {
                    release::publish::attach(&args.dir, reference, conn, progress)
                } else {
                    release::publish::push(&args.dir, reference, conn, progress)
                }
            },
        ),
        Command::Pull(args) => registry_command(
            &args.reference,
            args.insecure_http,
            args.json,
            stdout,
            if args.quiet { &silent } else { &loud },
            |reference, conn, progress| {
                release::publish::pull(reference, &args.out, conn, progress)
            },
        ),
        Command::Measure { command } => measure::run(&(*command).into(), stdout),
        Command::Attest { command } => match *command {
            cli::AttestCommand::Check(args) => attest::check(&args.into(), stdout),
        },
        Command::Kernel {
            command: cli::KernelCommand::Build(args),
        } => {
            let built = kernel::run_build(&(*args).into(), &|line: &str| progress.message(line))?;
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
            // Read the attestation key first: a bad key should not cost a rebuild.
            let attest_key = match &args.attest {
                Some(k) => Some(release::keys::SigningKey::load(k)?),
                None => None,
            };
            let opts = verify::VerifyOptions {
                manifest: args.manifest,
                record: args.record.clone(),
            };
            let quiet = |_: &str| {};
            let report = verify::verify(&opts, if args.quiet { &quiet } else { progress })?;
            if args.json {
                serde_json::to_writer_pretty(&mut *stdout, &report)?;
                writeln!(stdout)?;
            } else {
                stdout.write_all(report.render().as_bytes())?;
            }
            if let Some(f) = report.failure() {
                return Err(f.into());
            }
            if let Some(key) = attest_key {
                let out = args
                    .attest_out
                    .unwrap_or_else(|| release::attest::default_name(&key));
                let builder_differences: Vec<String> =
                    report.mismatches.iter().map(|m| m.path.clone()).collect();
                let a = release::attest::attest(&args.record, &key, &out, &builder_differences)
                    .context("writing the rebuild attestation")?;
                let line = format!(
                    "rebuild attestation by {} written to {} (public key {})",
                    a.fingerprint,
                    a.attestation.display(),
                    a.public_key.display()
                );
                // Text reports go to stdout; beside a JSON report, the line is progress.
                if !args.json {
                    writeln!(stdout, "{line}")?;
                } else if !args.quiet {
                    progress.message(&line);
                }
            }
            Ok(())
        }
        Command::Keygen(args) => {
            let g = release::keys::keygen(&args.out, args.algorithm)?;
            if args.json {
                serde_json::to_writer_pretty(&mut *stdout, &g)?;
                writeln!(stdout)?;
            } else {
                writeln!(
                    stdout,
                    "{} key written to {} (mode 0600) and {}
fingerprint {}",
                    g.algorithm,
                    g.private_key.display(),
                    g.public_key.display(),
                    g.fingerprint
                )?;
            }
            Ok(())
        }
        Command::Sign(args) => {
            let key = release::keys::SigningKey::load(&args.key)?;
            let s = release::sign::sign(&args.dir, &key)?;
            if args.json {
                serde_json::to_writer_pretty(&mut *stdout, &s)?;
                writeln!(stdout)?;
            } else {
                writeln!(
                    stdout,
                    "signed {} subject(s) with {}:
  {}
  {}
  {}",
                    s.subjects.len(),
                    s.fingerprint,
                    s.release.display(),
                    s.provenance.display(),
                    s.public_key.display()
                )?;
            }
            Ok(())
        }
        Command::Release {
            command: ReleaseCommand::Check(args),
        } => {
            let policy = release::check::load_policy(&args.policy)?;
            // A registry reference is pulled into a temporary directory, then checked like a
            // directory: the same code decides either way.
            let pulled = match args.source.to_str() {
                Some(s) if !args.source.is_dir() && s.contains("@sha256:") => {
                    let reference: release::reference::ImageRef = s.parse()?;
                    let conn = connection(&reference, args.insecure_http)?;
                    let tmp = tempfile::Builder::new()
                        .prefix("enclave-builder-release-")
                        .tempdir()
                        .context("creating a temporary directory for the pulled release")?;
                    let dir = tmp.path().join("release");
                    release::publish::pull(&reference, &dir, &conn, &|l: &str| {
                        progress.message(l)
                    })?;
                    Some((tmp, dir))
                }
                _ => None,
            };
            let source = pulled.as_ref().map_or(args.source.as_path(), |(_, d)| d);
            let v = release::check::check_release_dir(source, &policy)?;
            if args.json {
                serde_json::to_writer_pretty(&mut *stdout, &v)?;
                writeln!(stdout)?;
            } else {
                stdout.write_all(release::check::render(&v).as_bytes())?;
            }
            if v.passed {
                Ok(())
            } else {
                Err(release::check::ReleaseRejected {
                    failed: v.verdict.failures().count(),
                }
                .into())
            }
        }
        Command::Release {
            command: ReleaseCommand::Diff(args),
        } => {
            let d = release::diff::diff_paths(&args.old, &args.new)?;
            if args.json {
                serde_json::to_writer_pretty(&mut *stdout, &d)?;
                writeln!(stdout)?;
            } else {
                stdout.write_all(d.render().as_bytes())?;
            }
            Ok(())
        }
    }
}

fn connection(
    reference: &release::reference::ImageRef,
    insecure_http: bool,
) -> anyhow::Result<release::publish::Connection> {
    let credentials = release::auth::lookup(&plan::registry_auth_sources(), reference)?;
    Ok(release::publish::Connection {
        credentials,
        insecure_http,
    })
}

/// `push` and `pull`: parses the reference, finds its credentials, runs the transfer and
/// prints its report (text, or JSON with `json`).
fn registry_command(
    reference: &str,
    insecure_http: bool,
    json: bool,
    stdout: &mut dyn Write,
    progress: &dyn Fn(&str),
    run: impl FnOnce(
        &release::reference::ImageRef,
        &release::publish::Connection,
        &dyn Fn(&str),
    ) -> Result<release::publish::Report, release::publish::PublishError>,
) -> anyhow::Result<()> {
    let reference: release::reference::ImageRef = reference.parse()?;
    let conn = connection(&reference, insecure_http)?;
    let report = run(&reference, &conn, progress)?;
    if json {
        serde_json::to_writer_pretty(&mut *stdout, &report)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(report.render().as_bytes())?;
    }
    Ok(())
}

/// The error as one line for stderr: its message, then each cause's that it does not already
/// contain (many errors quote their source in their own message, and `{err:#}` printed it a
/// second time: "...; the layer is corrupt, rebuild it: archive header checksum mismatch"
/// after the same words earlier in the line).
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let line = cause.to_string();
        if text.is_empty() {
            text = line;
        } else if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
    }
    text
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
    if err.is::<release::check::ReleaseRejected>() {
        return EXIT_RELEASE_REJECTED;
    }
    if let Some(f) = err.downcast_ref::<verify::VerifyFailed>() {
        return f.code;
    }
    if let Some(e) = err
        .chain()
        .find_map(|e| e.downcast_ref::<release::publish::PublishError>())
    {
        return if e.refused() {
            EXIT_INPUT_REFUSED
        } else {
            EXIT_TRANSFER_FAILED
        };
    }
    let refused = err.chain().any(|e| {
        e.is::<release::reference::RefError>()
            || e.is::<release::auth::AuthError>()
            || e.is::<pin::PinErrors>()
            || e.is::<pin::PinError>()
            || e.is::<manifest::Error>()
            || e.is::<inputs::oci_layout::OciLayoutError>()
            || e.is::<inputs::layer::LayerError>()
            || e.is::<tree::wheel::Error>()
            || e.is::<placement::PathTwice>()
            || e.is::<verify::UnknownRecordSchema>()
            || e.is::<tree::apply::ApplyError>()
            || e.is::<release::ReleaseError>()
    });
    if refused {
        EXIT_INPUT_REFUSED
    } else {
        EXIT_FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_says_each_cause_once() {
        let io = std::io::Error::other("archive header checksum mismatch");
        let err = anyhow::Error::new(tree::apply::ApplyError::Tar {
            layer: "L".into(),
            after: "at the start".into(),
            source: io,
        })
        .context("assembling the root tree");
        // `{:#}` says the source twice: the variant's message quotes it.
        assert_eq!(
            format!("{err:#}")
                .matches("archive header checksum mismatch")
                .count(),
            2
        );
        let text = error_text(&err);
        assert_eq!(
            text.matches("archive header checksum mismatch").count(),
            1,
            "{text}"
        );
        assert!(
            text.starts_with("assembling the root tree: layer L: "),
            "{text}"
        );
        // A cause its parent does not quote is still said.
        let err =
            anyhow::Error::new(std::io::Error::other("disk full")).context("writing rootfs.img");
        assert_eq!(error_text(&err), "writing rootfs.img: disk full");
    }
}

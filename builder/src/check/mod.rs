//! `check`: builds a manifest twice, in separate processes, under deliberately different
//! conditions ([`variations`]), and compares every artifact byte for byte; differences are
//! described by format ([`crate::diff`], shared with `verify`).
//!
//! `crate::inject` (compiled only with the `test-inject` feature) is the switch that makes a
//! build non-deterministic on purpose, so the tests can show each kind of difference is caught
//! and located.

pub mod variations;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::diff;
use crate::progress::Progress;
pub use diff::Difference;
pub use variations::Variation;

/// What to check, resolved from the command line.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The manifest.
    pub manifest: PathBuf,
    /// Keep both builds in this directory (created; must be empty) instead of a temporary one.
    pub keep: Option<PathBuf>,
    /// The variations build B runs under.
    pub variations: Vec<Variation>,
    /// The `enclave-builder` executable to run for each build.
    pub exe: PathBuf,
}

/// The outcome of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Every artifact identical.
    pub reproducible: bool,
    /// Variations applied to build B.
    pub variations: Vec<String>,
    /// Variations asked for that could not be applied, or that change nothing, and why.
    pub notes: Vec<String>,
    /// The conditions of build A and build B (paths relative to the work directory).
    pub conditions: Vec<String>,
    /// The artifacts compared.
    pub artifacts: Vec<String>,
    /// What differs, where.
    pub differences: Vec<Difference>,
}

/// The error [`crate::run`] returns after printing a report with differences; its exit code
/// is [`crate::exit::EXIT_NOT_REPRODUCIBLE`].
#[derive(Debug, thiserror::Error)]
#[error("not reproducible: {count} difference(s) between the two builds")]
pub struct NotReproducible {
    /// How many differences were reported.
    pub count: usize,
}

/// Runs both builds and compares them.
pub fn check(opts: &CheckOptions, progress: &dyn Progress) -> anyhow::Result<CheckReport> {
    let manifest = fs_err::canonicalize(&opts.manifest).context("the manifest")?;
    let tmp;
    let work: &Path = match &opts.keep {
        Some(dir) => {
            fs_err::create_dir_all(dir)?;
            if fs_err::read_dir(dir)?.next().is_some() {
                anyhow::bail!("--keep {}: the directory must be empty", dir.display());
            }
            dir
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("enclave-builder-check.")
                .tempdir()
                .context("creating a work directory")?;
            tmp.path()
        }
    };
    let work = fs_err::canonicalize(work)?;

    let mut notes = Vec::new();
    let faketime = variations::faketime_available();
    if opts.variations.contains(&Variation::Clock) && !faketime {
        notes.push("clock: faketime is not on PATH; both builds ran on the real clock".to_owned());
    }
    if opts.variations.contains(&Variation::Order) {
        notes.push(
            "order: no-op, the builder enumerates no directory (inputs are named by the manifest or an OCI index.json)"
                .to_owned(),
        );
    }
    let sides = [
        variations::baseline(),
        variations::varied(&opts.variations, faketime),
    ];
    for side in &sides {
        for d in [&side.cwd, &side.tmpdir, &side.home] {
            fs_err::create_dir_all(work.join(d))?;
        }
        if let Some(parent) = work.join(&side.out).parent() {
            fs_err::create_dir_all(parent)?;
        }
        progress.message(&side.describe());
        let out = side
            .command(&opts.exe, &manifest, &work)
            .output()
            .with_context(|| format!("running build {}", side.label))?;
        if !out.status.success() {
            anyhow::bail!(
                "build {} failed ({}):\n{}",
                side.label,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
    }
    let (artifacts, differences) =
        diff::compare_dirs(&work.join(&sides[0].out), &work.join(&sides[1].out))?;
    Ok(CheckReport {
        reproducible: differences.is_empty(),
        variations: opts
            .variations
            .iter()
            .map(|v| v.name().to_owned())
            .collect(),
        notes,
        conditions: sides.iter().map(|s| s.describe()).collect(),
        artifacts,
        differences,
    })
}

impl CheckReport {
    /// The short human report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(s, "variations: {}", self.variations.join(", "));
        for c in &self.conditions {
            let _ = writeln!(s, "  {c}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let _ = writeln!(s, "compared: {}", self.artifacts.join(", "));
        if self.reproducible {
            let _ = writeln!(s, "reproducible: every artifact is identical");
        } else {
            let _ = writeln!(
                s,
                "NOT reproducible: {} difference(s)",
                self.differences.len()
            );
            for d in &self.differences {
                let _ = writeln!(s, "  {d}");
            }
        }
        s
    }
}

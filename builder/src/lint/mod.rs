//! `enclave-builder lint MANIFEST`: what would make a build unpinned or host-dependent,
//! found before anything is built.
//!
//! Three kinds of finding, each naming the manifest field, the input as written and, inside
//! the input, the layer and path:
//!
//! - **pins**: an input without a pin (the message gives the exact TOML line to add, with the
//!   digest of the file as found, or the image manifests an OCI layout lists), a wrong pin
//!   (expected and found), a missing file, a Rust workspace without `Cargo.lock`;
//! - **Python bytecode**: timestamp-based `.pyc` files (PEP 552 flags 0) in layers, wheels
//!   and single files, whose bytes carry the time they were compiled; wheels whose sources
//!   `pip install` would compile (a note: this builder unpacks wheels, it never compiles);
//! - **host-dependent content**: per-host or per-build paths ([`HOST_RULES`]: machine IDs,
//!   SSH host keys, random seeds, logs, caches, pid files) and inputs read from absolute
//!   host paths or from `/proc`, `/sys`, `/dev`, `/tmp` ([`classify_source`]).
//!
//! The decisions are pure functions in `rules` ([`classify_path`], [`pyc_header`],
//! [`classify_source`]); the scanner around them streams layers entry by entry and reads only
//! the first 16 bytes of each `.pyc`. Content findings follow the build's layering: a path a
//! later layer, whiteout, extra file, wheel member or component replaces is not reported.
//! Findings come out in manifest order, then in the order of each input's entries, so the
//! report is deterministic.

mod rules;
mod scan;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::{self, Manifest};

pub use rules::{
    classify_path, classify_source, image_path, is_bytecode, pyc_header, HostRule, PathMatch,
    PycHeader, Severity, HOST_RULES, PEP552_FIRST_MAGIC,
};

/// The `schema` of the JSON report. Changing a field's name or meaning changes this.
pub const REPORT_SCHEMA: &str = "enclave-builder.lint.v1";

/// One problem (or remark) about one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// A stable identifier of the check: `unpinned`, `pin-mismatch`, `input-missing`,
    /// `input-unreadable`, `cargo-lock-missing`, `toolchain-unpinned`, `pyc-timestamp`,
    /// `pyc-hash`, `pyc-unknown`, `wheel-sources`, `host-file`, `host-path`, `volatile-path`.
    pub rule: &'static str,
    /// The manifest field, e.g. `rootfs.layers[1]`.
    pub field: String,
    /// The input as the manifest writes it (a path relative to the manifest).
    pub input: String,
    /// For an OCI layout, the layer (`sha256:HEX`) the finding is in.
    pub layer: Option<String>,
    /// The path inside the input (in the image, absolute), when the finding is about one entry.
    pub path: Option<String>,
    /// What is wrong and why.
    pub message: String,
    /// What to change, e.g. the exact TOML line to add.
    pub fix: Option<String>,
}

/// Everything `lint` found in one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: &'static str,
    /// The manifest as it was named on the command line.
    pub manifest: String,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Number of notes.
    pub notes: usize,
    /// The findings, in manifest order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// A report over `findings`, with the counts.
    pub fn new(manifest: String, findings: Vec<Finding>) -> Report {
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        Report {
            schema: REPORT_SCHEMA,
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            notes: count(Severity::Note),
            manifest,
            findings,
        }
    }

    /// Whether any finding is an error (the lint fails).
    pub fn failed(&self) -> bool {
        self.errors > 0
    }

    /// The human-readable report: one `error:`/`warning:`/`note:` line per finding (with a
    /// `fix:` line under it when there is one), then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            // Writing to a String cannot fail.
            let _ = write!(out, "{}: {}: {}", f.severity.as_str(), f.field, f.input);
            if let Some(layer) = &f.layer {
                let _ = write!(out, " layer {layer}");
            }
            if let Some(path) = &f.path {
                let _ = write!(out, ": {path}");
            }
            let _ = writeln!(out, ": {}", f.message);
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "  fix: {fix}");
            }
        }
        let _ = writeln!(
            out,
            "{}: {} error(s), {} warning(s), {} note(s){}",
            self.manifest,
            self.errors,
            self.warnings,
            self.notes,
            if self.failed() { "" } else { "; lint passed" }
        );
        out
    }
}

/// Why a manifest could not be linted at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LintError {
    /// The manifest cannot be read.
    #[error("cannot read the manifest {path}")]
    Io {
        /// The manifest.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not UTF-8.
    #[error("the manifest {path} is not UTF-8 text")]
    NotUtf8 {
        /// The manifest.
        path: PathBuf,
    },
    /// The manifest does not parse (the source is the [`manifest::Error`], so the command
    /// exits with the input-refused code).
    #[error("cannot lint the manifest")]
    Manifest(#[from] manifest::Error),
}

/// The lint ran and found errors (the report has been printed).
#[derive(Debug, thiserror::Error)]
#[error("lint: {errors} error(s); see the findings above")]
pub struct LintFailed {
    /// How many.
    pub errors: usize,
}

/// Reads, parses and lints the manifest at `manifest_path`. Paths in it are relative to its
/// directory.
pub fn lint_file(manifest_path: &Path) -> Result<Report, LintError> {
    let bytes = fs_err::read(manifest_path).map_err(|source| LintError::Io {
        path: manifest_path.to_owned(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| LintError::NotUtf8 {
        path: manifest_path.to_owned(),
    })?;
    let origin = manifest_path.display().to_string();
    let manifest = manifest::parse(text, &origin)?;
    let base = match manifest_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok(lint_manifest(&manifest, &base, &origin))
}

/// Lints a parsed manifest whose relative paths resolve against `base`; `origin` names it in
/// the report.
pub fn lint_manifest(manifest: &Manifest, base: &Path, origin: &str) -> Report {
    let mut linter = scan::Linter::new(base);
    linter.manifest(manifest);
    Report::new(origin.to_owned(), linter.into_findings())
}

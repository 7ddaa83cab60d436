//! `verify`: rebuilds a manifest and compares the result with a published `record.json`,
//! field by field (inputs, artifacts, rootfs/verity/cmdline, measurements), by JSON path.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::diff::record::{json_diff, show_pair};
use crate::exit::{EXIT_INPUTS_DIFFER, EXIT_MEASUREMENTS_DIFFER, EXIT_NOT_REPRODUCIBLE};
use crate::progress::Progress;
use crate::{pipeline, plan};

/// What to verify, resolved from the command line.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The manifest to rebuild.
    pub manifest: PathBuf,
    /// The published record to compare with.
    pub record: PathBuf,
}

/// Which part of the record a mismatch is in; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Part {
    /// `$.inputs`, `$.manifest_sha256`, `$.image`, `$.source_date_epoch`: the rebuilder has
    /// other inputs (exit [`EXIT_INPUTS_DIFFER`]).
    Inputs,
    /// `$.outputs`, `$.rootfs`, `$.kernel_cmdline`: same inputs, other artifacts (exit
    /// [`EXIT_NOT_REPRODUCIBLE`]).
    Artifacts,
    /// `$.measurements` (exit [`EXIT_MEASUREMENTS_DIFFER`]).
    Measurements,
    /// `$.builder`, `$.schema`: reported, but not a failure by itself.
    Builder,
}

/// One field that differs.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// Which part of the record.
    pub part: Part,
    /// The JSON path, e.g. `$.rootfs.verity.root_hash`.
    pub path: String,
    /// The published value (compact JSON, or `(absent)`).
    pub published: String,
    /// The rebuilt value.
    pub rebuilt: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Nothing but (at most) builder information differs.
    pub verified: bool,
    /// The process exit code this outcome maps to.
    pub exit_code: u8,
    /// Every differing field, in record order.
    pub mismatches: Vec<Mismatch>,
}

/// The error [`crate::run`] returns after printing a failed report; carries the exit code.
#[derive(Debug, thiserror::Error)]
#[error("verification failed: {count} field(s) differ from the published record ({what})")]
pub struct VerifyFailed {
    /// The exit code.
    pub code: u8,
    /// How many fields differ.
    pub count: usize,
    /// Which kind decided the exit code.
    pub what: &'static str,
}

/// The published record is not in the format this builder writes (checked before rebuilding).
#[derive(Debug, thiserror::Error)]
#[error(
    "{}: schema {} is not {:?}, the record format this builder writes and compares; \
     verify it with the builder version named in its `builder` field",
    record.display(),
    found.as_deref().map_or("(absent)".to_owned(), |f| format!("{f:?}")),
    measurements::record::RECORD_SCHEMA
)]
pub struct UnknownRecordSchema {
    /// The published record.
    pub record: PathBuf,
    /// Its `schema` value, if it is a string.
    pub found: Option<String>,
}

/// Rebuilds the manifest (into a temporary directory under `TMPDIR`) and compares.
pub fn verify(opts: &VerifyOptions, progress: &dyn Progress) -> anyhow::Result<VerifyReport> {
    let published = fs_err::read(&opts.record).context("reading the published record")?;
    let published: Value = serde_json::from_slice(&published)
        .with_context(|| format!("{} is not JSON", opts.record.display()))?;
    // Checked before the (long) rebuild: a record in another format cannot be compared.
    let schema = published.get("schema").and_then(Value::as_str);
    if schema != Some(measurements::record::RECORD_SCHEMA) {
        return Err(UnknownRecordSchema {
            record: opts.record.clone(),
            found: schema.map(str::to_owned),
        }
        .into());
    }
    let tmp = tempfile::Builder::new()
        .prefix("enclave-builder-verify.")
        .tempdir()
        .context("creating a work directory")?;
    let plan = plan::Plan::new(&opts.manifest, &tmp.path().join("out"), false)?;
    let record = pipeline::build(&plan, progress).context("rebuilding")?;
    let rebuilt = serde_json::to_value(&record)?;
    Ok(compare(&published, &rebuilt))
}

/// Compares a published record with a rebuilt one.
pub fn compare(published: &Value, rebuilt: &Value) -> VerifyReport {
    let mismatches: Vec<Mismatch> = json_diff(published, rebuilt)
        .into_iter()
        .map(|d| {
            let (published, rebuilt) = show_pair(d.a.as_ref(), d.b.as_ref());
            Mismatch {
                part: part_of(&d.path),
                published,
                rebuilt,
                path: d.path,
            }
        })
        .collect();
    let worst = mismatches
        .iter()
        .map(|m| m.part)
        .filter(|p| *p != Part::Builder)
        .min();
    let exit_code = match worst {
        None => 0,
        Some(Part::Inputs) => EXIT_INPUTS_DIFFER,
        Some(Part::Measurements) => EXIT_MEASUREMENTS_DIFFER,
        Some(_) => EXIT_NOT_REPRODUCIBLE,
    };
    VerifyReport {
        verified: exit_code == 0,
        exit_code,
        mismatches,
    }
}

fn part_of(path: &str) -> Part {
    let top = path
        .strip_prefix("$.")
        .unwrap_or(path)
        .split(['.', '['])
        .next()
        .unwrap_or_default();
    match top {
        "inputs" | "manifest_sha256" | "image" | "source_date_epoch" => Part::Inputs,
        "measurements" => Part::Measurements,
        "builder" | "schema" => Part::Builder,
        _ => Part::Artifacts,
    }
}

impl VerifyReport {
    /// The short human report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for m in &self.mismatches {
            let what = match m.part {
                Part::Inputs => "input",
                Part::Artifacts => "artifact",
                Part::Measurements => "measurement",
                Part::Builder => "builder (not a failure)",
            };
            s.push_str(&format!(
                "{what} differs: {}\n  published {}\n  rebuilt   {}\n",
                m.path, m.published, m.rebuilt
            ));
        }
        s.push_str(match self.exit_code {
            0 => "verified: the rebuild matches the published record\n",
            EXIT_INPUTS_DIFFER => "NOT verified: the rebuild used other inputs\n",
            EXIT_MEASUREMENTS_DIFFER => "NOT verified: launch measurements differ\n",
            _ => "NOT verified: same inputs, other artifacts (not reproducible)\n",
        });
        s
    }

    /// The error to return when not verified.
    pub fn failure(&self) -> Option<VerifyFailed> {
        let what = match self.exit_code {
            0 => return None,
            EXIT_INPUTS_DIFFER => "inputs",
            EXIT_MEASUREMENTS_DIFFER => "measurements",
            _ => "artifacts",
        };
        Some(VerifyFailed {
            code: self.exit_code,
            count: self.mismatches.len(),
            what,
        })
    }
}

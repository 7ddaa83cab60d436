//! `release diff`: what changed between two releases, by input, artifact, measurement and
//! kernel command line, with the unchanged ones listed too.

use std::path::{Path, PathBuf};

use measurements::record::{Input, Record};
use serde::Serialize;
use serde_json::Value;
use verifier::release::RECORD_NAME;

use super::{io, ReleaseError};

/// The JSON schema identifier of `release diff --json`.
pub const DIFF_SCHEMA: &str = "enclave-builder.release-diff.v1";

/// Whether an item changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In both, equal.
    Unchanged,
    /// In both, different.
    Changed,
    /// Only in NEW.
    Added,
    /// Only in OLD.
    Removed,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field name (`sha256`, `size`, `launch_digest`, `full`, ...).
    pub field: String,
    /// The old value (compact JSON text for non-strings; absent when added).
    pub old: Option<String>,
    /// The new value.
    pub new: Option<String>,
}

/// One input, artifact, measurement or the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// What it is: `file model:/notes/README.txt`, `rootfs.img`, `snp launch_digest`, ...
    pub name: String,
    /// Whether it changed.
    pub status: Status,
    /// The fields that differ (empty when unchanged).
    pub changes: Vec<FieldChange>,
}

/// The difference between two records.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDiff {
    /// [`DIFF_SCHEMA`].
    pub schema: &'static str,
    /// The old record file.
    pub old: PathBuf,
    /// The new record file.
    pub new: PathBuf,
    /// Whether anything below changed.
    pub changed: bool,
    /// Inputs, keyed by kind and identity (source, path in the image, package, ...).
    pub inputs: Vec<Item>,
    /// Artifacts, by file name.
    pub outputs: Vec<Item>,
    /// One item per profile and field (`snp launch_digest`, `tdx mrtd`, ...).
    pub measurements: Vec<Item>,
    /// The kernel command line (`full` and `verity_fragment`).
    pub kernel_cmdline: Item,
}

/// Reads `record.json` from a file or from a release directory.
pub fn load_record(path: &Path) -> Result<(PathBuf, Record), ReleaseError> {
    let file = if path.is_dir() {
        path.join(RECORD_NAME)
    } else {
        path.to_owned()
    };
    let bytes = fs_err::read(&file).map_err(io(&file))?;
    let record = serde_json::from_slice(&bytes).map_err(|e| ReleaseError::Parse {
        path: file.clone(),
        message: e.to_string(),
    })?;
    Ok((file, record))
}

/// Compares two releases (record files or release directories).
pub fn diff_paths(old: &Path, new: &Path) -> Result<ReleaseDiff, ReleaseError> {
    let (old_path, old) = load_record(old)?;
    let (new_path, new) = load_record(new)?;
    let mut d = diff(&old, &new);
    d.old = old_path;
    d.new = new_path;
    Ok(d)
}

/// Compares two records.
pub fn diff(old: &Record, new: &Record) -> ReleaseDiff {
    let inputs = keyed(
        &old.inputs.iter().map(input_entry).collect::<Vec<_>>(),
        &new.inputs.iter().map(input_entry).collect::<Vec<_>>(),
    );
    let outputs = keyed(
        &old.outputs
            .iter()
            .map(|o| (o.name.clone(), to_value(o)))
            .collect::<Vec<_>>(),
        &new.outputs
            .iter()
            .map(|o| (o.name.clone(), to_value(o)))
            .collect::<Vec<_>>(),
    );
    let measurements = keyed(&measurement_entries(old), &measurement_entries(new));
    let kernel_cmdline = item(
        "kernel_cmdline".into(),
        Some(&to_value(&old.kernel_cmdline)),
        Some(&to_value(&new.kernel_cmdline)),
    );
    let changed = [&inputs, &outputs, &measurements]
        .into_iter()
        .flatten()
        .chain([&kernel_cmdline])
        .any(|i| i.status != Status::Unchanged);
    ReleaseDiff {
        schema: DIFF_SCHEMA,
        old: PathBuf::new(),
        new: PathBuf::new(),
        changed,
        inputs,
        outputs,
        measurements,
        kernel_cmdline,
    }
}

impl ReleaseDiff {
    /// The human report: changed items first in each section, then the unchanged ones.
    pub fn render(&self) -> String {
        let mut s = format!("old {}\nnew {}\n", self.old.display(), self.new.display());
        for (title, items) in [
            ("inputs", &self.inputs),
            ("artifacts", &self.outputs),
            ("measurements", &self.measurements),
            ("kernel command line", &vec![self.kernel_cmdline.clone()]),
        ] {
            s.push_str(&format!("{title}:\n"));
            for i in items.iter().filter(|i| i.status != Status::Unchanged) {
                let status = match i.status {
                    Status::Changed => "changed",
                    Status::Added => "added",
                    Status::Removed => "removed",
                    Status::Unchanged => "unchanged",
                };
                s.push_str(&format!("  {status:<9} {}\n", i.name));
                for c in &i.changes {
                    s.push_str(&format!(
                        "      {}: {} -> {}\n",
                        c.field,
                        c.old.as_deref().unwrap_or("(absent)"),
                        c.new.as_deref().unwrap_or("(absent)")
                    ));
                }
            }
            let same: Vec<&str> = items
                .iter()
                .filter(|i| i.status == Status::Unchanged)
                .map(|i| i.name.as_str())
                .collect();
            if !same.is_empty() {
                s.push_str(&format!("  unchanged {}\n", same.join(", ")));
            }
        }
        s.push_str(if self.changed {
            "the releases differ\n"
        } else {
            "the releases are identical\n"
        });
        s
    }
}

fn to_value<T: Serialize>(t: &T) -> Value {
    // Record types serialise to JSON without fail (strings, numbers, lists).
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// An input's identity (what it is, not its content) and its fields.
fn input_entry(input: &Input) -> (String, Value) {
    let place = |disk: &Option<String>| disk.clone().unwrap_or_else(|| "rootfs".into());
    let key = match input {
        Input::OciImage { source, .. } => format!("oci-image {source}"),
        Input::Layer { source, .. } => format!("layer {source}"),
        Input::File { disk, path, .. } => format!("file {}:{path}", place(disk)),
        Input::RustComponent { package, bin, .. } => format!("rust-component {package}/{bin}"),
        Input::Wheel { disk, name, .. } => format!("wheel {}:{name}", place(disk)),
        Input::Kernel { .. } => "kernel".into(),
        Input::KernelConfig { .. } => "kernel-config".into(),
        Input::Firmware { .. } => "firmware".into(),
        Input::UkiStub { source, .. } => format!("uki-stub {source}"),
    };
    (key, to_value(input))
}

/// One entry per profile and measured field.
fn measurement_entries(r: &Record) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for m in &r.measurements {
        let platform = to_value(&m.platform);
        let kind = platform.get("kind").and_then(Value::as_str).unwrap_or("?");
        out.push((
            format!("{} ({kind}) firmware_sha256", m.profile),
            Value::String(m.firmware_sha256.to_hex()),
        ));
        if let Value::Object(fields) = &platform {
            for (k, v) in fields.iter().filter(|(k, _)| k.as_str() != "kind") {
                out.push((format!("{} ({kind}) {k}", m.profile), v.clone()));
            }
        }
    }
    out
}

/// Pairs entries by key (repeated keys get `#2`, `#3`), in OLD's order then NEW's additions.
fn keyed(old: &[(String, Value)], new: &[(String, Value)]) -> Vec<Item> {
    let number = |entries: &[(String, Value)]| -> Vec<(String, Value)> {
        let mut seen: Vec<String> = Vec::new();
        entries
            .iter()
            .map(|(k, v)| {
                let n = seen.iter().filter(|s| *s == k).count();
                seen.push(k.clone());
                let key = if n == 0 {
                    k.clone()
                } else {
                    format!("{k} #{}", n + 1)
                };
                (key, v.clone())
            })
            .collect()
    };
    let (old, new) = (number(old), number(new));
    let mut items: Vec<Item> = old
        .iter()
        .map(|(k, v)| {
            item(
                k.clone(),
                Some(v),
                new.iter().find(|(n, _)| n == k).map(|(_, v)| v),
            )
        })
        .collect();
    items.extend(
        new.iter()
            .filter(|(k, _)| !old.iter().any(|(o, _)| o == k))
            .map(|(k, v)| item(k.clone(), None, Some(v))),
    );
    items
}

fn item(name: String, old: Option<&Value>, new: Option<&Value>) -> Item {
    let (status, changes) = match (old, new) {
        (Some(a), Some(b)) if a == b => (Status::Unchanged, Vec::new()),
        (Some(a), Some(b)) => (Status::Changed, field_changes(a, b)),
        (Some(a), None) => (Status::Removed, field_changes(a, &Value::Null)),
        (None, Some(b)) => (Status::Added, field_changes(&Value::Null, b)),
        (None, None) => (Status::Unchanged, Vec::new()),
    };
    Item {
        name,
        status,
        changes,
    }
}

/// The top-level fields that differ (the value itself when not an object).
fn field_changes(a: &Value, b: &Value) -> Vec<FieldChange> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().collect();
            keys.extend(y.keys().filter(|k| !x.contains_key(*k)));
            keys.into_iter()
                .filter(|k| x.get(*k) != y.get(*k))
                .map(|k| FieldChange {
                    field: k.clone(),
                    old: x.get(k).map(show),
                    new: y.get(k).map(show),
                })
                .collect()
        }
        (Value::Object(_), Value::Null) | (Value::Null, Value::Object(_)) => Vec::new(),
        _ => vec![FieldChange {
            field: "value".into(),
            old: (!a.is_null()).then(|| show(a)),
            new: (!b.is_null()).then(|| show(b)),
        }],
    }
}

/// A value as text: strings bare, anything else compact JSON, long values shortened.
fn show(v: &Value) -> String {
    let s = v
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string());
    if s.chars().count() > 4096 {
        let head: String = s.chars().take(4096).collect();
        format!("{head}… ({} characters)", s.chars().count())
    } else {
        s
    }
}

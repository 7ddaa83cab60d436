//! Structured differences between two builds' artifacts, per format: EROFS paths and fields
//! ([`erofs`]), JSON paths ([`record`]), byte offsets with ELF/PE section names ([`bytes`]).

pub mod bytes;
pub mod erofs;
pub mod record;

use std::fmt;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// At most this many differences are reported per artifact (the first ones found).
pub const MAX_PER_ARTIFACT: usize = 16;

/// One difference between build A and build B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The artifact (output file name), e.g. `rootfs.img`.
    pub artifact: String,
    /// Where inside it: a path in the file system, a JSON path, a section, a region.
    pub location: String,
    /// What differs there: `content`, `mode`, `value`, `bytes`, a superblock field...
    pub field: String,
    /// First differing byte (or character) offset, relative to `location` when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Build A's value, when short enough to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    /// Build B's value, when short enough to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
}

impl Difference {
    pub(crate) fn new(
        artifact: &str,
        location: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        Difference {
            artifact: artifact.to_owned(),
            location: location.into(),
            field: field.into(),
            offset: None,
            a: None,
            b: None,
        }
    }

    pub(crate) fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    pub(crate) fn values(mut self, a: impl fmt::Display, b: impl fmt::Display) -> Self {
        self.a = Some(a.to_string());
        self.b = Some(b.to_string());
        self
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.artifact, self.location, self.field)?;
        if let Some(o) = self.offset {
            write!(f, " at offset {o}")?;
        }
        match (&self.a, &self.b) {
            (Some(a), Some(b)) => write!(f, " (A {a}, B {b})"),
            _ => Ok(()),
        }
    }
}

/// Compares every file in output directories `a` and `b` byte for byte and describes each
/// difference. Returns the names compared (sorted) and the differences.
pub fn compare_dirs(a: &Path, b: &Path) -> anyhow::Result<(Vec<String>, Vec<Difference>)> {
    let names_a = list(a)?;
    let names_b = list(b)?;
    let mut out = Vec::new();
    let mut compared = Vec::new();
    for n in &names_a {
        if !names_b.contains(n) {
            out.push(Difference::new(n, "(file)", "only in build A"));
        }
    }
    for n in &names_b {
        if !names_a.contains(n) {
            out.push(Difference::new(n, "(file)", "only in build B"));
        }
    }
    // Root causes first: file-system and binary artifacts, then the text and the record that
    // restate their digests.
    let mut common: Vec<&String> = names_a.iter().filter(|n| names_b.contains(n)).collect();
    common.sort_by_key(|n| (matches!(n.as_str(), "cmdline" | "record.json"), n.as_str()));
    for n in common {
        let ba = fs_err::read(a.join(n))?;
        let bb = fs_err::read(b.join(n))?;
        compared.push(n.clone());
        if ba != bb {
            out.extend(diff_file(n, &ba, &bb));
        }
    }
    Ok((compared, out))
}

/// Describes how `a` and `b` (the same artifact from two builds, known to differ) differ.
pub fn diff_file(name: &str, a: &[u8], b: &[u8]) -> Vec<Difference> {
    let mut out = match name {
        "rootfs.img" => erofs::diff(name, a, b),
        n if n.starts_with("disk-") && n.ends_with(".img") => erofs::diff(name, a, b),
        "record.json" => record::diff_bytes(name, a, b),
        "cmdline" => text(name, a, b),
        _ => bytes::diff(name, a, b),
    };
    if out.is_empty() {
        // A format-level diff that found nothing still must not hide a byte difference.
        out = bytes::diff(name, a, b);
    }
    out.truncate(MAX_PER_ARTIFACT);
    out
}

/// Lists the regular files of an output directory, recursively, as sorted relative paths.
fn list(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        for e in fs_err::read_dir(&here)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ty = e.file_type().with_context(|| rel.clone())?;
            if ty.is_dir() {
                stack.push(rel);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Text artifacts (`cmdline`): the first differing character offset and the text around it.
fn text(name: &str, a: &[u8], b: &[u8]) -> Vec<Difference> {
    let (ta, tb) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let (ca, cb): (Vec<char>, Vec<char>) = (ta.chars().collect(), tb.chars().collect());
    let i = ca
        .iter()
        .zip(&cb)
        .position(|(x, y)| x != y)
        .unwrap_or(ca.len().min(cb.len()));
    let around = |c: &[char]| -> String {
        let s = i.saturating_sub(8);
        let e = (i + 24).min(c.len());
        format!(
            "{:?}",
            c.get(s..e).unwrap_or_default().iter().collect::<String>()
        )
    };
    vec![Difference::new(name, "text", "character")
        .at(i as u64)
        .values(around(&ca), around(&cb))]
}

/// The first offset at which `a` and `b` differ (or the shorter length), if they differ.
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

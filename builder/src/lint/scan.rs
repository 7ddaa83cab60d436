//! The I/O around the lint rules: hash and open each input the manifest names, stream its
//! entries, and turn what `rules` says about them into findings.
//!
//! Content findings (host files, bytecode) are about a path in a file system, so they follow
//! the build's layering: a later layer, extra file, wheel member or component placed at the
//! same path, or a whiteout in a later layer, removes the earlier finding, because that file
//! never reaches the image. Each file system (the root, each data disk) is its own scope.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use measurements::Sha256Digest;

use super::rules::{
    classify_path, classify_source, image_path, is_bytecode, pyc_header, PycHeader, Severity,
};
use super::Finding;
use crate::inputs::layer::open_layer;
use crate::inputs::oci_layout::{list_manifests, open_image, tar_blob, OciLayoutError};
use crate::manifest::{FileEntry, InputFile, LayerSource, Manifest, RustEntry, WheelEntry};
use crate::pin::{self, PinError};

/// Timestamp-based `.pyc` files listed one by one per input; the rest are counted in one
/// finding, so a layer with thousands of them gives a readable report.
const MAX_LISTED_PYC: usize = 10;

/// How to fix a timestamp-based `.pyc`.
const PYC_FIX: &str = "compile with SOURCE_DATE_EPOCH set (py_compile then writes checked-hash \
                       bytecode) or `python3 -m compileall --invalidation-mode checked-hash`, \
                       or delete the .pyc files from the layer";

/// Where a finding is: field, input and, inside the input, layer and path.
#[derive(Debug, Clone)]
struct At {
    field: String,
    input: String,
    layer: Option<String>,
    path: Option<String>,
}

impl At {
    fn new(field: impl Into<String>, input: &str) -> At {
        At {
            field: field.into(),
            input: input.to_owned(),
            layer: None,
            path: None,
        }
    }

    fn layer(&self, layer: String) -> At {
        At {
            layer: Some(layer),
            ..self.clone()
        }
    }

    fn path(&self, path: &str) -> At {
        At {
            path: Some(path.to_owned()),
            ..self.clone()
        }
    }
}

/// Collects findings over one manifest.
pub(super) struct Linter {
    base: PathBuf,
    /// `base`, absolute and canonical, for [`classify_source`].
    base_abs: PathBuf,
    /// Every finding so far, in order; `None` once a later input replaced its path.
    findings: Vec<Option<Finding>>,
    /// The file system being filled: `rootfs` or `disks[N]`.
    scope: String,
    /// Content findings by (scope, path in that file system): indices into `findings`.
    by_path: BTreeMap<(String, String), Vec<usize>>,
}

impl Linter {
    pub(super) fn new(base: &Path) -> Linter {
        Linter {
            base: base.to_owned(),
            base_abs: fs_err::canonicalize(base).unwrap_or_else(|_| base.to_owned()),
            findings: Vec::new(),
            scope: "rootfs".to_owned(),
            by_path: BTreeMap::new(),
        }
    }

    /// The surviving findings, with the timestamp-based bytecode of one input past
    /// [`MAX_LISTED_PYC`], and all its hash-based bytecode, each folded into one finding.
    pub(super) fn into_findings(self) -> Vec<Finding> {
        let findings: Vec<Finding> = self.findings.into_iter().flatten().collect();
        let group = |f: &Finding| (f.field.clone(), f.input.clone(), f.layer.clone());
        let mut totals: BTreeMap<_, (usize, usize)> = BTreeMap::new();
        for f in &findings {
            let t = totals.entry(group(f)).or_default();
            match f.rule {
                "pyc-timestamp" => t.0 += 1,
                "pyc-hash" => t.1 += 1,
                _ => {}
            }
        }
        let mut seen: BTreeMap<_, (usize, usize)> = BTreeMap::new();
        let mut out = Vec::with_capacity(findings.len());
        for f in findings {
            let key = group(&f);
            let (timestamp, hash) = totals.get(&key).copied().unwrap_or_default();
            let s = seen.entry(key).or_default();
            match f.rule {
                "pyc-timestamp" => {
                    s.0 += 1;
                    if s.0 <= MAX_LISTED_PYC {
                        out.push(f);
                    } else if s.0 == MAX_LISTED_PYC + 1 {
                        out.push(Finding {
                            path: None,
                            message: format!(
                                "{} more timestamp-based .pyc file(s) ({timestamp} in all; the \
                                 first {MAX_LISTED_PYC} are listed above)",
                                timestamp.saturating_sub(MAX_LISTED_PYC)
                            ),
                            ..f
                        });
                    }
                }
                "pyc-hash" => {
                    s.1 += 1;
                    if s.1 == 1 {
                        out.push(Finding {
                            path: None,
                            message: format!(
                                "{hash} hash-based .pyc file(s) (PEP 552): they hold a hash of \
                                 their source, not a time, and do not depend on when they were \
                                 compiled"
                            ),
                            ..f
                        });
                    }
                }
                _ => out.push(f),
            }
        }
        out
    }

    /// Every input of `m`, in manifest order.
    pub(super) fn manifest(&mut self, m: &Manifest) {
        for (i, layer) in m.rootfs.layers.iter().enumerate() {
            let field = format!("rootfs.layers[{i}]");
            match layer {
                LayerSource::Oci { oci, manifest } => self.oci(&field, oci, manifest.as_ref()),
                LayerSource::Tar { tar, sha256 } => self.tar(&field, tar, sha256.as_ref()),
            }
        }
        for (i, f) in m.rootfs.files.iter().enumerate() {
            self.file(&format!("rootfs.files[{i}]"), f);
        }
        for (i, w) in m.rootfs.wheels.iter().enumerate() {
            self.wheel(&format!("rootfs.wheels[{i}]"), w);
        }
        for (i, r) in m.rootfs.rust.iter().enumerate() {
            self.rust(&format!("rootfs.rust[{i}]"), r);
        }
        for (d, disk) in m.disks.iter().enumerate() {
            self.scope = format!("disks[{d}]");
            for (i, w) in disk.wheels.iter().enumerate() {
                self.wheel(&format!("disks[{d}].wheels[{i}]"), w);
            }
            for (i, f) in disk.files.iter().enumerate() {
                self.file(&format!("disks[{d}].files[{i}]"), f);
            }
        }
        self.scope = String::new();
        self.input_file("boot.kernel", &m.boot.kernel);
        if let Some(config) = &m.boot.kernel_config {
            self.input_file("boot.kernel_config", config);
        }
        self.input_file("boot.firmware", &m.boot.firmware);
        for (i, p) in m.profiles.iter().enumerate() {
            self.input_file(&format!("profiles[{i}].firmware"), p.firmware());
        }
    }

    fn push(
        &mut self,
        at: &At,
        severity: Severity,
        rule: &'static str,
        message: String,
        fix: Option<String>,
    ) {
        let index = self.findings.len();
        if let Some(path) = &at.path {
            if rule == "host-file" || rule.starts_with("pyc-") {
                self.by_path
                    .entry((self.scope.clone(), path.clone()))
                    .or_default()
                    .push(index);
            }
        }
        self.findings.push(Some(Finding {
            severity,
            rule,
            field: at.field.clone(),
            input: at.input.clone(),
            layer: at.layer.clone(),
            path: at.path.clone(),
            message,
            fix,
        }));
    }

    /// Something is placed at `path` (or removed from it): the content findings about `path`
    /// from before index `before` are dropped, and with `below` those about paths under it.
    fn replace(&mut self, path: &str, below: bool, before: usize) {
        let mut keys = vec![(self.scope.clone(), path.to_owned())];
        if below {
            let stem = if path == "/" { "" } else { path };
            // Every path starting with `{stem}/`: `0` is the character after `/`.
            let range =
                (self.scope.clone(), format!("{stem}/"))..(self.scope.clone(), format!("{stem}0"));
            keys.extend(self.by_path.range(range).map(|(k, _)| k.clone()));
        }
        for key in keys {
            if let Some(indices) = self.by_path.get_mut(&key) {
                let findings = &mut self.findings;
                indices.retain(|&i| {
                    if i >= before {
                        return true;
                    }
                    if let Some(slot) = findings.get_mut(i) {
                        *slot = None;
                    }
                    false
                });
            }
        }
    }

    /// Where the source reference itself points.
    fn source(&mut self, at: &At) {
        if let Some((rule, message)) = classify_source(&at.input, &self.base_abs) {
            let fix = "copy the file next to the manifest (or into a directory under it), \
                       refer to it by a relative path and pin it";
            self.push(at, Severity::Error, rule, message, Some(fix.to_owned()));
        }
    }

    /// Checks a file's pin. Returns the resolved path and the digest found when the file
    /// can be read (pinned or not), so its content can still be scanned.
    fn pinned(&mut self, at: &At, pin: Option<&Sha256Digest>) -> Option<(PathBuf, Sha256Digest)> {
        self.source(at);
        match pin::check(&self.base, &at.input, pin, &at.field) {
            Ok(p) => Some((p.path, p.sha256)),
            Err(PinError::Missing { found, .. }) => {
                let line = format!("sha256 = \"{found}\"");
                self.push(
                    at,
                    Severity::Error,
                    "unpinned",
                    format!("not pinned; add {line} to {}", at.field),
                    Some(line),
                );
                Some((self.base.join(&at.input), found))
            }
            Err(PinError::Mismatch {
                expected, found, ..
            }) => {
                self.push(
                    at,
                    Severity::Error,
                    "pin-mismatch",
                    format!(
                        "sha256 mismatch: the manifest pins {expected} but the file has {found}"
                    ),
                    Some(format!(
                        "restore the pinned file, or pin this one on purpose: sha256 = \"{found}\""
                    )),
                );
                Some((self.base.join(&at.input), found))
            }
            Err(PinError::Io { source, .. }) => {
                self.push(
                    at,
                    Severity::Error,
                    "input-missing",
                    format!(
                        "cannot read the file ({}); paths are relative to the manifest",
                        source.kind()
                    ),
                    None,
                );
                None
            }
            Err(other) => {
                self.push(
                    at,
                    Severity::Error,
                    "input-unreadable",
                    other.to_string(),
                    None,
                );
                None
            }
        }
    }

    /// An OCI image layout: its manifest pin, then every layer of the pinned image.
    fn oci(&mut self, field: &str, oci: &str, pin: Option<&Sha256Digest>) {
        let at = At::new(field, oci);
        self.source(&at);
        let layout = self.base.join(oci);
        let Some(pin) = pin else {
            let available = list_manifests(&layout);
            let digests: Vec<&str> = available
                .iter()
                .filter_map(|a| a.split(' ').next())
                .collect();
            let (message, fix) = match digests.as_slice() {
                [] => (
                    "OCI layout not pinned, and its index.json lists no image that can be read"
                        .to_owned(),
                    None,
                ),
                [one] => (
                    format!(
                        "OCI layout not pinned by an image manifest digest; its index.json lists \
                         {}. Add manifest = \"{one}\" to {field} (its layers are scanned once \
                         it is pinned)",
                        available.join(", ")
                    ),
                    Some(format!("manifest = \"{one}\"")),
                ),
                _ => (
                    format!(
                        "OCI layout not pinned by an image manifest digest; its index.json lists \
                         {}. Pin the image you mean (its layers are scanned once it is pinned)",
                        available.join(", ")
                    ),
                    Some(format!("manifest = \"<one of {}>\"", digests.join(", "))),
                ),
            };
            self.push(&at, Severity::Error, "unpinned", message, fix);
            return;
        };
        let image = match open_image(&layout, pin) {
            Ok(image) => image,
            Err(e) => {
                let rule = if matches!(e, OciLayoutError::ManifestNotFound { .. }) {
                    "pin-mismatch"
                } else {
                    "input-unreadable"
                };
                self.push(&at, Severity::Error, rule, e.to_string(), None);
                return;
            }
        };
        for blob in &image.layers {
            let at = at.layer(format!("sha256:{}", blob.digest));
            match open_layer(blob) {
                Ok(reader) => self.tar_stream(&at, reader),
                Err(e) => {
                    self.push(
                        &at,
                        Severity::Error,
                        "input-unreadable",
                        e.to_string(),
                        None,
                    );
                }
            }
        }
    }

    /// A tar file layer: its pin, then its entries (scanned even when unpinned).
    fn tar(&mut self, field: &str, tar: &str, pin: Option<&Sha256Digest>) {
        let at = At::new(field, tar);
        let Some((path, found)) = self.pinned(&at, pin) else {
            return;
        };
        let opened = tar_blob(&path, &found)
            .map_err(|e| e.to_string())
            .and_then(|blob| open_layer(&blob).map_err(|e| e.to_string()));
        match opened {
            Ok(reader) => self.tar_stream(&at, reader),
            Err(e) => self.push(&at, Severity::Error, "input-unreadable", e, None),
        }
    }

    /// Streams a decompressed tar: every regular file's path, and the header of every `.pyc`.
    fn tar_stream(&mut self, at: &At, reader: impl Read) {
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(entries) => entries,
            Err(e) => {
                let message = format!("not a readable tar stream: {e}");
                self.push(at, Severity::Error, "input-unreadable", message, None);
                return;
            }
        };
        // Findings from index `start` on are this layer's; whiteouts hide only lower layers.
        let start = self.findings.len();
        let mut opaque = Vec::new();
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let message = format!("not a readable tar stream: {e}");
                    self.push(at, Severity::Error, "input-unreadable", message, None);
                    break;
                }
            };
            let path = image_path(&String::from_utf8_lossy(&entry.path_bytes()));
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            let dir = if dir.is_empty() { "/" } else { dir };
            if name == ".wh..wh..opq" {
                // Applied after the layer: it hides the lower layers' entries, not this one's.
                opaque.push(dir.to_owned());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let hidden = image_path(&format!("{dir}/{hidden}"));
                self.replace(&hidden, true, start);
                continue;
            }
            let kind = entry.header().entry_type();
            // A directory merges with what is below it; anything else replaces it.
            self.replace(&path, !kind.is_dir(), self.findings.len());
            if !(kind.is_file() || kind == tar::EntryType::Continuous) {
                continue;
            }
            let size = entry.size();
            let here = at.path(&path);
            self.host_file(&here, &path, size);
            if is_bytecode(&path) {
                let mut head = Vec::with_capacity(16);
                match (&mut entry).take(16).read_to_end(&mut head) {
                    Ok(_) => self.bytecode(&here, &head),
                    Err(e) => {
                        let message = format!("cannot read the entry: {e}");
                        self.push(&here, Severity::Error, "input-unreadable", message, None);
                        break;
                    }
                }
            }
        }
        for dir in opaque {
            // Everything the lower layers put under `dir` is gone (`dir` itself stays, but a
            // lower-layer finding about `dir` is about a file it replaced).
            self.replace(&dir, true, start);
        }
    }

    /// An extra file: its pin, its place in the image, and its header if it is bytecode.
    fn file(&mut self, field: &str, f: &FileEntry) {
        let at = At::new(field, &f.source);
        let Some((path, _)) = self.pinned(&at, f.sha256.as_ref()) else {
            return;
        };
        let dest = image_path(&f.path);
        self.replace(&dest, true, self.findings.len());
        let here = at.path(&dest);
        let size = fs_err::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.host_file(&here, &dest, size);
        if is_bytecode(&dest) || is_bytecode(&f.source) {
            let mut head = Vec::with_capacity(16);
            let read = fs_err::File::open(&path).and_then(|f| f.take(16).read_to_end(&mut head));
            match read {
                Ok(_) => self.bytecode(&here, &head),
                Err(e) => {
                    let message = format!("cannot read the file: {e}");
                    self.push(&here, Severity::Error, "input-unreadable", message, None);
                }
            }
        }
    }

    /// A wheel: its pin, then the members it places (bytecode, host paths, sources).
    fn wheel(&mut self, field: &str, w: &WheelEntry) {
        let at = At::new(field, &w.wheel);
        let Some((path, _)) = self.pinned(&at, w.sha256.as_ref()) else {
            return;
        };
        let unreadable = |e: &dyn std::fmt::Display| format!("not a readable wheel (zip): {e}");
        let file = match fs_err::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                self.push(
                    &at,
                    Severity::Error,
                    "input-unreadable",
                    unreadable(&e),
                    None,
                );
                return;
            }
        };
        let mut archive = match zip::ZipArchive::new(BufReader::new(file)) {
            Ok(a) => a,
            Err(e) => {
                self.push(
                    &at,
                    Severity::Error,
                    "input-unreadable",
                    unreadable(&e),
                    None,
                );
                return;
            }
        };
        let prefix = w
            .take
            .as_ref()
            .map(|t| format!("{}/", t.trim_end_matches('/')));
        let mut bytecode = 0usize;
        let mut sources = 0usize;
        for i in 0..archive.len() {
            let member = archive.by_index_raw(i).and_then(|m| {
                let name = m.name()?.into_owned();
                Ok((name, m.size(), m.is_dir()))
            });
            let (name, size, is_dir) = match member {
                Ok(m) => m,
                Err(e) => {
                    self.push(
                        &at,
                        Severity::Error,
                        "input-unreadable",
                        unreadable(&e),
                        None,
                    );
                    return;
                }
            };
            if is_dir {
                continue;
            }
            let rel = match &prefix {
                Some(p) => match name.strip_prefix(p.as_str()) {
                    Some(rel) => rel,
                    None => continue,
                },
                None => name.as_str(),
            };
            let dest = image_path(&format!("{}/{rel}", w.into));
            self.replace(&dest, true, self.findings.len());
            let here = at.path(&dest);
            self.host_file(&here, &dest, size);
            if name.ends_with(".py") {
                sources += 1;
            }
            if is_bytecode(&name) {
                bytecode += 1;
                let mut head = Vec::with_capacity(16);
                let read = archive
                    .by_index(i)
                    .map_err(|e| e.to_string())
                    .and_then(|m| m.take(16).read_to_end(&mut head).map_err(|e| e.to_string()));
                match read {
                    Ok(_) => self.bytecode(&here, &head),
                    Err(e) => {
                        self.push(
                            &here,
                            Severity::Error,
                            "input-unreadable",
                            unreadable(&e),
                            None,
                        );
                        return;
                    }
                }
            }
        }
        if sources > 0 && bytecode == 0 {
            self.push(
                &at,
                Severity::Note,
                "wheel-sources",
                format!(
                    "{sources} Python source file(s) and no bytecode: `pip install` would compile \
                     them at install time into timestamp-based .pyc files. This builder unpacks \
                     wheels and never compiles bytecode, so nothing time-dependent reaches the \
                     image; Python compiles these modules in memory when it imports them (the \
                     image is read-only)"
                ),
                None,
            );
        }
    }

    /// A Rust component: the workspace must have `Cargo.lock` (the build is `--locked`) and
    /// should pin its toolchain.
    fn rust(&mut self, field: &str, r: &RustEntry) {
        let at = At::new(field, &r.workspace);
        self.source(&at);
        self.replace(&image_path(&r.path), true, self.findings.len());
        let ws = self.base.join(&r.workspace);
        if !ws.is_dir() {
            let message =
                "the workspace directory does not exist; paths are relative to the manifest";
            self.push(
                &at,
                Severity::Error,
                "input-missing",
                message.to_owned(),
                None,
            );
            return;
        }
        if !ws.join("Cargo.lock").is_file() {
            self.push(
                &at,
                Severity::Error,
                "cargo-lock-missing",
                format!(
                    "the workspace has no Cargo.lock: {}/{} builds with --locked, which fails \
                     without it, and its dependency versions would otherwise be whatever the \
                     registry offers on the day of the build",
                    r.package, r.bin
                ),
                Some(format!(
                    "run `cargo generate-lockfile` in {} and commit Cargo.lock",
                    r.workspace
                )),
            );
        }
        if !ws.join("rust-toolchain.toml").is_file() && !ws.join("rust-toolchain").is_file() {
            self.push(
                &at,
                Severity::Warning,
                "toolchain-unpinned",
                "the workspace has no rust-toolchain.toml: the binary is built with whichever \
                 Rust toolchain the build host has, and other compilers give other bytes"
                    .to_owned(),
                Some("add rust-toolchain.toml with channel = \"<exact version>\"".to_owned()),
            );
        }
    }

    /// A boot or firmware file: its pin only (it is not parsed here).
    fn input_file(&mut self, field: &str, f: &InputFile) {
        let at = At::new(field, &f.path);
        self.pinned(&at, f.sha256.as_ref());
    }

    /// A regular file at `path` in the image, checked against the host rules.
    fn host_file(&mut self, at: &At, path: &str, size: u64) {
        if let Some(rule) = classify_path(path, size) {
            self.push(at, rule.severity, "host-file", rule.reason.to_owned(), None);
        }
    }

    /// The first bytes of a `.pyc`.
    fn bytecode(&mut self, at: &At, head: &[u8]) {
        let timestamp = |what: String| {
            format!(
                "{what}: its bytes hold the mtime of its source when it was compiled, so \
                 rebuilding the input gives other bytes; and since the image gives every file \
                 the mtime source_date_epoch, Python finds it stale and recompiles the module \
                 in memory on every start"
            )
        };
        let message = match pyc_header(head) {
            PycHeader::Hash { .. } => {
                // Folded into one note per input by `into_findings`.
                let message = "hash-based bytecode".to_owned();
                self.push(at, Severity::Note, "pyc-hash", message, None);
                return;
            }
            PycHeader::Timestamp { mtime, .. } => timestamp(format!(
                "timestamp-based Python bytecode (PEP 552 flags 0, source mtime {mtime})"
            )),
            PycHeader::Legacy { magic, mtime } => timestamp(format!(
                "Python bytecode from before 3.7 (magic {magic}), always timestamp-based \
                 (source mtime {mtime})"
            )),
            PycHeader::UnknownFlags(flags) => {
                let message = format!(
                    "Python bytecode with PEP 552 flags {flags:#x}, which define no known \
                     invalidation mode"
                );
                self.push(at, Severity::Warning, "pyc-unknown", message, None);
                return;
            }
            PycHeader::NotBytecode => {
                let message = "named like Python bytecode but has no bytecode header".to_owned();
                self.push(at, Severity::Warning, "pyc-unknown", message, None);
                return;
            }
        };
        let fix = Some(PYC_FIX.to_owned());
        self.push(at, Severity::Error, "pyc-timestamp", message, fix);
    }
}

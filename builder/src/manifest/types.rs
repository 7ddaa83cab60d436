//! Manifest values that carry their checks (STYLE 17): each is parsed once, when the manifest
//! is loaded (serde `try_from`), so a bad value is refused before any input is read, and code
//! behind the manifest never re-checks and cannot hold an invalid one.

use std::fmt;
use std::ops::Deref;

use serde::Deserialize;

/// EROFS's (and Linux's) longest file name, in bytes.
pub const NAME_MAX: usize = 255;

/// An absolute path inside the image: starts with `/`, has no `.` or `..` component, no NUL,
/// and no component longer than [`NAME_MAX`] bytes. One rule for every manifest field that
/// names a place in an image (`files[].path`, `rust[].path`, `wheels[].into`, `disks[].mount`,
/// `boot.init`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ImagePath(String);

impl ImagePath {
    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ImagePath {
    type Error = String;

    fn try_from(p: String) -> Result<Self, String> {
        let fix = "write an absolute path inside the image, e.g. \"/etc/motd\"";
        if !p.starts_with('/') {
            return Err(format!("image path {p:?} is not absolute; {fix}"));
        }
        if p.contains('\0') {
            return Err(format!("image path {p:?} contains a NUL byte; {fix}"));
        }
        if let Some(c) = p.split('/').find(|c| *c == ".." || *c == ".") {
            return Err(format!(
                "image path {p:?} has a `{c}` component; {fix} without `.` or `..`"
            ));
        }
        if let Some(c) = p.split('/').find(|c| c.len() > NAME_MAX) {
            return Err(format!(
                "image path {p:?} has a {}-byte component; EROFS names hold at most {NAME_MAX} bytes",
                c.len()
            ));
        }
        Ok(ImagePath(p))
    }
}

impl Deref for ImagePath {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ImagePath> for String {
    fn from(p: ImagePath) -> String {
        p.0
    }
}

/// A file mode as a manifest gives it: permission and special bits only (`0o7777`); the file
/// type comes from what the entry is, so `0o100644` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "u32")]
pub struct Mode(u32);

impl Mode {
    /// The bits (at most `0o7777`).
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Mode {
    type Error = String;

    fn try_from(m: u32) -> Result<Self, String> {
        if m & !0o7777 != 0 {
            return Err(format!(
                "mode {m:#o} has bits beyond 0o7777 (a file type?); give permission and special bits only, e.g. 0o644"
            ));
        }
        Ok(Mode(m))
    }
}

/// `source_date_epoch`: the only time that reaches an artifact, in seconds since the Unix
/// epoch. Every output format must hold it; the initramfs (newc) has the narrowest field, a
/// 32-bit mtime, so the largest accepted value is `u32::MAX` (2106-02-07).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "u64")]
pub struct Epoch(u32);

impl Epoch {
    /// Seconds since the Unix epoch.
    pub fn seconds(self) -> u64 {
        u64::from(self.0)
    }

    /// The same, as newc's 32-bit mtime (always fits).
    pub fn as_u32(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for Epoch {
    type Error = String;

    fn try_from(s: u64) -> Result<Self, String> {
        u32::try_from(s).map(Epoch).map_err(|_| {
            format!(
                "source_date_epoch {s} does not fit the initramfs (newc) format's 32-bit mtime; the largest is {} (2106-02-07)",
                u32::MAX
            )
        })
    }
}

/// The vCPU counts an SEV-SNP profile is measured for: `vcpus = 4` or `vcpus = [1, 2, 4]`.
/// SEV-SNP measures one VMSA per vCPU, so every count has its own launch digest; the record
/// holds one measurement per count. Not empty, no zero, no count twice; kept in manifest order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "VcpuCountsToml")]
pub struct VcpuCounts(Vec<std::num::NonZeroU32>);

/// The two spellings `vcpus` accepts.
#[derive(Deserialize)]
#[serde(untagged)]
enum VcpuCountsToml {
    One(u32),
    Several(Vec<u32>),
}

impl VcpuCounts {
    /// The counts, in manifest order.
    pub fn counts(&self) -> &[std::num::NonZeroU32] {
        &self.0
    }
}

impl TryFrom<VcpuCountsToml> for VcpuCounts {
    type Error = String;

    fn try_from(v: VcpuCountsToml) -> Result<Self, String> {
        let raw = match v {
            VcpuCountsToml::One(n) => vec![n],
            VcpuCountsToml::Several(list) => list,
        };
        if raw.is_empty() {
            return Err(
                "vcpus = [] lists no vCPU count; write e.g. vcpus = 4 or vcpus = [1, 2, 4]".into(),
            );
        }
        let mut counts = Vec::with_capacity(raw.len());
        for n in raw {
            let n = std::num::NonZeroU32::new(n)
                .ok_or("vcpus: 0 is not a vCPU count; every count must be 1 or more")?;
            if counts.contains(&n) {
                return Err(format!("vcpus lists {n} twice; list each vCPU count once"));
            }
            counts.push(n);
        }
        Ok(VcpuCounts(counts))
    }
}

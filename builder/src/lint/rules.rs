//! The lint's pure core: what a path, a `.pyc` header or a source reference means, decided
//! from data alone. No I/O here; `scan` feeds it names, sizes and the first bytes of files.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// How bad a finding is. Only errors fail the lint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never a problem by itself.
    Note,
    /// Probably a problem; the lint still passes.
    Warning,
    /// Breaks pinning or reproducibility; the lint fails.
    Error,
}

impl Severity {
    /// The word printed before a finding: `note`, `warning`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// How a [`HostRule`] matches a path inside the image (absolute, normalized, no trailing `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatch {
    /// Exactly this path.
    Exact(&'static str),
    /// Paths starting with this string (e.g. `/etc/ssh/ssh_host_` matches every host key).
    Prefix(&'static str),
    /// Paths strictly below this directory.
    Under(&'static str),
    /// File names ending with this string.
    Suffix(&'static str),
}

impl PathMatch {
    fn matches(self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => path.starts_with(p),
            PathMatch::Under(d) => path
                .strip_prefix(d)
                .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1),
            PathMatch::Suffix(s) => path
                .rsplit('/')
                .next()
                .is_some_and(|name| name.len() > s.len() && name.ends_with(s)),
        }
    }
}

/// A path whose content is conventionally per host or per build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRule {
    /// Which paths.
    pub matches: PathMatch,
    /// Only regular files with content count (an empty `/etc/machine-id` is the correct way
    /// to ship one: systemd fills it on first boot).
    pub non_empty: bool,
    /// How bad it is.
    pub severity: Severity,
    /// Why the content depends on the host or the build.
    pub reason: &'static str,
}

/// Per-host and per-build paths, checked against every regular file of every layer, wheel
/// and single file (by its place in the image). One entry per path, with its reason.
pub const HOST_RULES: &[HostRule] = &[
    HostRule {
        matches: PathMatch::Exact("/etc/machine-id"),
        non_empty: true,
        severity: Severity::Error,
        reason: "the machine ID of the host or container that built the layer: every VM of \
                 this image would share it; ship it empty so systemd generates one at boot",
    },
    HostRule {
        matches: PathMatch::Exact("/var/lib/dbus/machine-id"),
        non_empty: true,
        severity: Severity::Error,
        reason: "D-Bus's copy of the build host's machine ID; remove it (or make it a \
                 symlink to /etc/machine-id)",
    },
    HostRule {
        matches: PathMatch::Prefix("/etc/ssh/ssh_host_"),
        non_empty: false,
        severity: Severity::Error,
        reason: "an SSH host key generated when the layer was built: random per build, and \
                 its private half would be shared by every VM; generate host keys at boot",
    },
    HostRule {
        matches: PathMatch::Exact("/var/lib/systemd/random-seed"),
        non_empty: true,
        severity: Severity::Error,
        reason: "the random seed systemd saved on the build host: random per build, and \
                 shared by every VM; remove it",
    },
    HostRule {
        matches: PathMatch::Exact("/etc/ld.so.cache"),
        non_empty: false,
        severity: Severity::Warning,
        reason: "written by ldconfig on the build host: its bytes depend on that ldconfig \
                 and the libraries it found; regenerate it in a pinned layer or drop it",
    },
    HostRule {
        matches: PathMatch::Exact("/etc/hostname"),
        non_empty: true,
        severity: Severity::Note,
        reason: "usually the name of the build container; the guest's name is normally set \
                 at boot",
    },
    HostRule {
        matches: PathMatch::Under("/var/log"),
        non_empty: true,
        severity: Severity::Warning,
        reason: "a log written during the build: timestamps and host details of that build",
    },
    HostRule {
        matches: PathMatch::Under("/var/cache/apt"),
        non_empty: true,
        severity: Severity::Warning,
        reason: "apt's package cache from the build: depends on the mirror and the time of \
                 `apt-get update`; clean it (`apt-get clean`, remove /var/lib/apt/lists)",
    },
    HostRule {
        matches: PathMatch::Under("/root/.cache"),
        non_empty: true,
        severity: Severity::Warning,
        reason: "a per-user cache left by the build (pip, ...): its content depends on what \
                 that build downloaded and when",
    },
    HostRule {
        matches: PathMatch::Suffix(".pid"),
        non_empty: true,
        severity: Severity::Warning,
        reason: "the process ID of a process that ran during the build",
    },
];

/// The first rule a regular file at `path` (in the image) of `size` bytes breaks.
pub fn classify_path(path: &str, size: u64) -> Option<&'static HostRule> {
    HOST_RULES
        .iter()
        .find(|r| r.matches.matches(path) && (!r.non_empty || size > 0))
}

/// A tar entry or wheel member name as an absolute image path: `./a//b/` → `/a/b`.
pub fn image_path(name: &str) -> String {
    let parts: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Whether a path names Python bytecode: `*.pyc` (beside its source, or in `__pycache__/`
/// as PEP 3147 places it) or the older `*.pyo`.
pub fn is_bytecode(path: &str) -> bool {
    path.ends_with(".pyc") || path.ends_with(".pyo")
}

/// The first Python magic number with the PEP 552 header (3.7a4: magic 3392); from then on
/// bytes 4..8 are a flags word.
pub const PEP552_FIRST_MAGIC: u16 = 3392;

/// What the first 16 bytes of a `.pyc` say about how it was compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PycHeader {
    /// PEP 552 flags 0: bytes 8..12 are the source file's mtime when it was compiled.
    Timestamp {
        /// The magic number (little endian u16 of bytes 0..2).
        magic: u16,
        /// The embedded source mtime (seconds).
        mtime: u32,
    },
    /// A pre-PEP 552 header (Python 2, Python 3 before 3.7): always timestamp-based.
    Legacy {
        /// The magic number.
        magic: u16,
        /// The embedded source mtime (bytes 4..8).
        mtime: u32,
    },
    /// PEP 552 flags bit 0: bytes 8..16 are a SipHash of the source, no time.
    Hash {
        /// Flags bit 1: the interpreter checks the hash against the source.
        checked: bool,
    },
    /// A PEP 552 flags word with bits this lint does not know.
    UnknownFlags(u32),
    /// Too short, or bytes 2..4 are not `\r\n`: not bytecode.
    NotBytecode,
}

/// Reads a `.pyc` header (PEP 552). Takes any number of bytes; never panics.
pub fn pyc_header(bytes: &[u8]) -> PycHeader {
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    };
    let (Some(first), Some(second)) = (word(0), word(4)) else {
        return PycHeader::NotBytecode;
    };
    if bytes.get(2..4) != Some(b"\r\n".as_slice()) {
        return PycHeader::NotBytecode;
    }
    // Lossless: the low 16 bits of a u32.
    let magic = (first & 0xffff) as u16;
    // Python 3 magic numbers run from 3000 up; Python 2's (20121..=62211) predate PEP 552.
    if !(PEP552_FIRST_MAGIC..20000).contains(&magic) {
        return PycHeader::Legacy {
            magic,
            mtime: second,
        };
    }
    match second {
        0 => match word(8) {
            Some(mtime) => PycHeader::Timestamp { magic, mtime },
            None => PycHeader::NotBytecode,
        },
        0b01 => PycHeader::Hash { checked: false },
        0b11 => PycHeader::Hash { checked: true },
        other => PycHeader::UnknownFlags(other),
    }
}

/// What a source reference in the manifest says about the host: `Some((rule, reason))` for
/// an absolute path outside `manifest_dir` (absolute, canonical), or any path that lands in
/// a volatile host directory (`/proc`, `/sys`, `/dev`, `/tmp`) outside it.
pub fn classify_source(source: &str, manifest_dir: &Path) -> Option<(&'static str, String)> {
    let written = Path::new(source);
    let resolved = normalize(&manifest_dir.join(written));
    if resolved.starts_with(manifest_dir) {
        return None;
    }
    for (dir, why) in VOLATILE_DIRS {
        if resolved.starts_with(dir) {
            return Some((
                "volatile-path",
                format!(
                    "{source} is under {dir}, {why}: its content is not the same on another \
                     machine, or on this one later"
                ),
            ));
        }
    }
    if written.is_absolute() {
        return Some((
            "host-path",
            format!(
                "{source} is an absolute path outside the manifest's directory: it names a \
                 file of this build host, which another builder does not have (or has other \
                 content at)"
            ),
        ));
    }
    None
}

/// Host directories whose content is generated by the running system.
const VOLATILE_DIRS: [(&str, &str); 4] = [
    ("/proc", "the kernel's view of running processes"),
    ("/sys", "the kernel's view of this machine's devices"),
    ("/dev", "this machine's devices"),
    ("/tmp", "scratch space that is cleaned and reused"),
];

/// Removes `.` and resolves `..` lexically (symlinks are not followed).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pyc(magic: u16, flags: u32, rest: [u8; 8]) -> Vec<u8> {
        let mut v = magic.to_le_bytes().to_vec();
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&rest);
        v
    }

    #[test]
    fn pyc_headers_by_flags_word() {
        // 3495 is CPython 3.11's magic number.
        let t = pyc(3495, 0, [0x10, 0, 0, 0x65, 5, 0, 0, 0]);
        assert_eq!(
            pyc_header(&t),
            PycHeader::Timestamp {
                magic: 3495,
                mtime: 0x6500_0010
            }
        );
        assert_eq!(
            pyc_header(&pyc(3495, 3, [0; 8])),
            PycHeader::Hash { checked: true }
        );
        assert_eq!(
            pyc_header(&pyc(3495, 1, [0; 8])),
            PycHeader::Hash { checked: false }
        );
        assert_eq!(
            pyc_header(&pyc(3495, 4, [0; 8])),
            PycHeader::UnknownFlags(4)
        );
        // Python 3.6 (3379) and 2.7 (62211): no flags word, bytes 4..8 are the mtime.
        assert_eq!(
            pyc_header(&pyc(3379, 7, [0; 8])),
            PycHeader::Legacy {
                magic: 3379,
                mtime: 7
            }
        );
        assert!(matches!(
            pyc_header(&pyc(62211, 7, [0; 8])),
            PycHeader::Legacy { magic: 62211, .. }
        ));
    }

    #[test]
    fn short_or_foreign_bytes_are_not_bytecode() {
        for bytes in [
            &b""[..],
            b"\x0d\x0d\r\n",
            b"abcdefghijklmnop",
            &[0xa7, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 1],
        ] {
            assert_eq!(pyc_header(bytes), PycHeader::NotBytecode, "{bytes:?}");
        }
    }

    #[test]
    fn host_paths() {
        let rule = |p: &str, size| classify_path(p, size).map(|r| r.severity);
        assert_eq!(rule("/etc/machine-id", 33), Some(Severity::Error));
        assert_eq!(rule("/etc/machine-id", 0), None);
        assert_eq!(
            rule("/etc/ssh/ssh_host_ed25519_key", 0),
            Some(Severity::Error)
        );
        assert_eq!(rule("/etc/ssh/sshd_config", 10), None);
        assert_eq!(
            rule("/var/log/apt/history.log", 10),
            Some(Severity::Warning)
        );
        assert_eq!(rule("/var/log", 10), None);
        assert_eq!(rule("/var/logfile", 10), None);
        assert_eq!(rule("/run/sshd.pid", 4), Some(Severity::Warning));
        assert_eq!(rule("/run/.pid", 4), None);
        assert_eq!(rule("/etc/hostname", 5), Some(Severity::Note));
        assert_eq!(rule("/usr/bin/python3", 5), None);
    }

    #[test]
    fn image_paths_and_bytecode() {
        assert_eq!(image_path("./etc//machine-id"), "/etc/machine-id");
        assert_eq!(image_path("usr/lib/"), "/usr/lib");
        assert_eq!(image_path("./"), "/");
        assert!(is_bytecode("/a/__pycache__/m.cpython-311.pyc"));
        assert!(is_bytecode("/a/m.pyc"));
        assert!(!is_bytecode("/a/__pycache__"));
        assert!(!is_bytecode("/a/__pycache__/README"));
        assert!(!is_bytecode("/a/m.py"));
    }

    proptest::proptest! {
        // Input bytes are hostile (STYLE 8): any header, any name, never a panic.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24),
                        name in "[./a-z_]{0,12}") {
            let _ = pyc_header(&bytes);
            let _ = classify_path(&image_path(&name), bytes.len() as u64);
            let _ = classify_source(&name, Path::new("/m"));
        }
    }

    #[test]
    fn source_references() {
        let dir = Path::new("/work/project/manifests");
        assert_eq!(classify_source("inputs/a.tar", dir), None);
        assert_eq!(classify_source("../kernel/bzImage", dir), None);
        assert_eq!(classify_source("/work/project/manifests/x", dir), None);
        assert_eq!(
            classify_source("/etc/hostname", dir).unwrap().0,
            "host-path"
        );
        assert_eq!(
            classify_source("/tmp/x.tar", dir).unwrap().0,
            "volatile-path"
        );
        assert_eq!(
            classify_source("../../../../proc/version", dir).unwrap().0,
            "volatile-path"
        );
        // A manifest that itself lives in /tmp may use relative paths freely.
        assert_eq!(classify_source("a.tar", Path::new("/tmp/x")), None);
    }
}

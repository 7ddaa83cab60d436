//! Python wheels as inputs: unpacked, never installed.
//!
//! A wheel is a zip file with a `NAME-VERSION.dist-info/RECORD` listing every member with its
//! sha256 (PEP 376, PEP 427). The `.whl` file itself is pinned by the manifest; on top of that
//! every member placed in the image is checked against `RECORD`, so a wheel whose zip was
//! rewritten around a consistent outer digest still cannot smuggle a member in. `RECORD` itself,
//! which lists itself without a hash, is placed as read (the outer pin covers it). Nothing the
//! wheel carries is executed: no install scripts, no bytecode compilation (members are placed
//! byte for byte, so no `.pyc` with a build-time timestamp can appear).
//!
//! Members are placed with mode 0644 (0755 when the zip's Unix mode has an execute bit),
//! owned by 0:0, in name order. Symlinks, absolute names, `..` and duplicate names (raw or
//! decoded) are refused.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use measurements::record::{self, WheelFile};
use measurements::Sha256Digest;

use super::apply::{insert_file, ApplyError};
use super::{Leaf, LeafKind, Metadata, Tree};
use crate::content::ContentStore;

/// Why a wheel was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is not a readable zip archive.
    #[error("wheel {wheel}: not a readable zip archive ({source}); re-download the wheel and check its sha256")]
    Zip {
        /// The wheel as the manifest names it.
        wheel: String,
        /// What the zip reader said.
        source: zip::result::ZipError,
    },
    /// No `*.dist-info/RECORD`.
    #[error("wheel {wheel}: has no *.dist-info/RECORD, so its members cannot be checked; use a wheel built by a standard tool")]
    NoRecord {
        /// The wheel.
        wheel: String,
    },
    /// A `RECORD` line is malformed.
    #[error("wheel {wheel}: RECORD line {line}: {problem}")]
    Record {
        /// The wheel.
        wheel: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A member is not in `RECORD` or has no hash there.
    #[error("wheel {wheel}: member {member:?} has no sha256 in RECORD; the wheel is inconsistent, do not use it")]
    Unrecorded {
        /// The wheel.
        wheel: String,
        /// The member.
        member: String,
    },
    /// A member's content does not match `RECORD`.
    #[error("wheel {wheel}: member {member:?} has sha256 {found}, but RECORD says {expected}; the wheel was altered, do not use it")]
    Mismatch {
        /// The wheel.
        wheel: String,
        /// The member.
        member: String,
        /// From `RECORD`.
        expected: Sha256Digest,
        /// Computed.
        found: Sha256Digest,
    },
    /// A member name that could climb out of its directory, a symlink, or a duplicate.
    #[error("wheel {wheel}: member {member:?} {problem}; refusing the wheel")]
    Member {
        /// The wheel.
        wheel: String,
        /// The member.
        member: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The central directory lists one name more than once; zip readers disagree on which copy
    /// is the member (the `zip` crate and Python keep the last, others the first).
    #[error("wheel {wheel}: the zip lists a member name twice, so readers disagree on its content; refusing the wheel")]
    DuplicateNames {
        /// The wheel.
        wheel: String,
    },
    /// `take` selects nothing.
    #[error(
        "wheel {wheel}: no member is under {take:?}; `take` must name a directory inside the wheel"
    )]
    TakeEmpty {
        /// The wheel.
        wheel: String,
        /// The prefix.
        take: String,
    },
    /// Reading a member failed.
    #[error("wheel {wheel}: reading member {member:?}: {source}")]
    Io {
        /// The wheel.
        wheel: String,
        /// The member.
        member: String,
        /// The error.
        source: std::io::Error,
    },
    /// Placing a member into the tree failed.
    #[error("wheel {wheel}: {source}")]
    Apply {
        /// The wheel.
        wheel: String,
        /// The error.
        source: ApplyError,
    },
}

/// What was unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Distribution name (from `METADATA`, else the file name).
    pub name: String,
    /// Version.
    pub version: String,
    /// Placed members, by path in the tree, sorted.
    pub files: Vec<WheelFile>,
    /// The modes they were placed with, in the same order.
    pub modes: Vec<u32>,
}

impl Unpacked {
    /// The record entry of this wheel (`disk`: the data disk it is on; `source`, `sha256`,
    /// `size`: the pinned `.whl`).
    pub fn into_record(
        self,
        disk: Option<&str>,
        source: &str,
        sha256: Sha256Digest,
        size: u64,
    ) -> record::Input {
        record::Input::Wheel {
            disk: disk.map(str::to_owned),
            source: source.to_owned(),
            sha256,
            size,
            name: self.name,
            version: self.version,
            files: self.files,
        }
    }
}

/// Where members go.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// Only members under this directory of the wheel, relative to it.
    pub take: Option<&'a str>,
    /// The absolute directory in the tree they go to.
    pub into: &'a str,
}

/// Unpacks the wheel at `path` (already pinned; `source` names it in messages) into `tree`,
/// member contents into `store`.
pub fn unpack(
    path: &Path,
    source: &str,
    placement: Placement<'_>,
    tree: &mut Tree,
    store: &ContentStore,
) -> Result<Unpacked, Error> {
    let wheel = source.to_owned();
    let zip_err = |e| Error::Zip {
        wheel: wheel.clone(),
        source: e,
    };
    let file = fs_err::File::open(path).map_err(|e| Error::Io {
        wheel: wheel.clone(),
        member: String::new(),
        source: e,
    })?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
    // The archive indexes members by raw name, keeping only the last of a repeated name, so
    // the loop below would never see the repetition.
    if archive.has_duplicate_names() {
        return Err(Error::DuplicateNames { wheel });
    }

    // Index members by name; refuse names that could not be placed safely.
    let mut members: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).map_err(zip_err)?;
        let name = f.name().map_err(zip_err)?.into_owned();
        let member_err = |problem| Error::Member {
            wheel: wheel.clone(),
            member: name.clone(),
            problem,
        };
        if name.starts_with('/') || name.contains('\\') || name.contains('\0') {
            return Err(member_err("has an absolute or non-portable name"));
        }
        // An empty component (`a//b`) would place two differently named members, each with
        // its own RECORD digest, at one path; a directory entry's name ends in one `/`.
        let path = if f.is_dir() {
            name.strip_suffix('/').unwrap_or(&name)
        } else {
            &name
        };
        if path
            .split('/')
            .any(|c| c.is_empty() || c == ".." || c == ".")
        {
            return Err(member_err("has an empty, `.` or `..` path component"));
        }
        if f.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000) {
            return Err(member_err("is a symbolic link"));
        }
        if f.is_dir() {
            continue;
        }
        if members.insert(name.clone(), i).is_some() {
            return Err(member_err("appears twice"));
        }
    }

    let (dist_info, record) = read_record(&mut archive, &members, &wheel)?;
    let (name, version) = read_metadata(&mut archive, &members, &dist_info, path);
    // RECORD and its signatures (PEP 427: RECORD.jws, RECORD.p7s) are listed without a hash.
    let unhashed = [
        format!("{dist_info}/RECORD"),
        format!("{dist_info}/RECORD.jws"),
        format!("{dist_info}/RECORD.p7s"),
    ];

    let prefix = placement
        .take
        .map(|t| format!("{}/", t.trim_end_matches('/')));
    let mut placed: Vec<(WheelFile, u32)> = Vec::new();
    for (member, &index) in &members {
        let rel = match &prefix {
            Some(p) => match member.strip_prefix(p.as_str()) {
                Some(rel) => rel,
                None => continue,
            },
            None => member.as_str(),
        };
        // RECORD lists itself without a hash (PEP 376) and signatures of RECORD are not listed
        // at all (PEP 427); their bytes are covered by the wheel's pin. Every other member
        // needs a hash.
        let expected = match record.get(member.as_str()).copied() {
            Some(Some(d)) => Some(d),
            Some(None) if unhashed.contains(member) => None,
            None if unhashed[1..].contains(member) => None,
            _ => {
                return Err(Error::Unrecorded {
                    wheel: wheel.clone(),
                    member: member.clone(),
                })
            }
        };
        let mut f = archive.by_index(index).map_err(zip_err)?;
        let size = f.size();
        let mode = if f.unix_mode().is_some_and(|m| m & 0o111 != 0) {
            0o755
        } else {
            0o644
        };
        let (content, sha256) =
            store
                .put(&mut f as &mut dyn Read, size)
                .map_err(|source| Error::Io {
                    wheel: wheel.clone(),
                    member: member.clone(),
                    source,
                })?;
        let found = Sha256Digest(sha256);
        if let Some(expected) = expected.filter(|e| *e != found) {
            return Err(Error::Mismatch {
                wheel: wheel.clone(),
                member: member.clone(),
                expected,
                found,
            });
        }
        let target = format!("{}/{rel}", placement.into.trim_end_matches('/'));
        let leaf = Leaf {
            meta: Metadata {
                mode,
                uid: 0,
                gid: 0,
                xattrs: Default::default(),
            },
            kind: LeafKind::Regular(content),
        };
        insert_file(tree, target.as_bytes(), leaf).map_err(|source| Error::Apply {
            wheel: wheel.clone(),
            source,
        })?;
        placed.push((
            WheelFile {
                path: target,
                sha256: found,
                size,
            },
            mode,
        ));
    }
    if placed.is_empty() {
        if let Some(take) = placement.take {
            return Err(Error::TakeEmpty {
                wheel,
                take: take.to_owned(),
            });
        }
    }
    placed.sort();
    let (files, modes) = placed.into_iter().unzip();
    Ok(Unpacked {
        name,
        version,
        files,
        modes,
    })
}

type Archive = zip::ZipArchive<std::io::BufReader<fs_err::File>>;

/// Finds `*.dist-info/RECORD` (exactly one, at the top level) and parses it into
/// member -> sha256 (`None` for members listed without a hash: RECORD itself, signatures).
fn read_record(
    archive: &mut Archive,
    members: &BTreeMap<String, usize>,
    wheel: &str,
) -> Result<(String, BTreeMap<String, Option<Sha256Digest>>), Error> {
    let candidates: Vec<&String> = members
        .keys()
        .filter(|n| {
            n.strip_suffix("/RECORD")
                .is_some_and(|d| d.ends_with(".dist-info") && !d.contains('/'))
        })
        .collect();
    let [record_name] = candidates.as_slice() else {
        return Err(Error::NoRecord {
            wheel: wheel.to_owned(),
        });
    };
    let dist_info = record_name.trim_end_matches("/RECORD").to_owned();
    let mut text = String::new();
    archive
        .by_index(members[*record_name])
        .map_err(|source| Error::Zip {
            wheel: wheel.to_owned(),
            source,
        })?
        .read_to_string(&mut text)
        .map_err(|source| Error::Io {
            wheel: wheel.to_owned(),
            member: (*record_name).clone(),
            source,
        })?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |problem: String| Error::Record {
            wheel: wheel.to_owned(),
            line: i + 1,
            problem,
        };
        let fields = csv_fields(line).ok_or_else(|| bad("unbalanced quotes".to_owned()))?;
        let [path, hash, _size] = fields.as_slice() else {
            return Err(bad(format!("expected 3 fields, found {}", fields.len())));
        };
        let digest = if hash.is_empty() {
            None
        } else {
            let b64 = hash.strip_prefix("sha256=").ok_or_else(|| {
                bad(format!(
                    "hash {hash:?} is not sha256=...; only sha256 wheels are accepted"
                ))
            })?;
            let bytes = decode_urlsafe_b64(b64)
                .filter(|b| b.len() == 32)
                .ok_or_else(|| bad(format!("{hash:?} is not a base64 sha256")))?;
            let mut d = [0u8; 32];
            d.copy_from_slice(&bytes);
            Some(Sha256Digest(d))
        };
        out.insert(path.clone(), digest);
    }
    Ok((dist_info, out))
}

/// `Name:` and `Version:` from `METADATA`; the wheel's file name when they are missing.
fn read_metadata(
    archive: &mut Archive,
    members: &BTreeMap<String, usize>,
    dist_info: &str,
    path: &Path,
) -> (String, String) {
    let from_file_name = || {
        let stem = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut parts = stem.splitn(3, '-');
        (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        )
    };
    let Some(&index) = members.get(&format!("{dist_info}/METADATA")) else {
        return from_file_name();
    };
    let mut text = String::new();
    let Ok(mut f) = archive.by_index(index) else {
        return from_file_name();
    };
    if f.read_to_string(&mut text).is_err() {
        return from_file_name();
    }
    let header = |key: &str| {
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
    };
    match (header("Name:"), header("Version:")) {
        (Some(n), Some(v)) => (n, v),
        _ => from_file_name(),
    }
}

/// Splits one CSV line (RFC 4180 quoting, as Python's csv module writes RECORD).
fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, ',') => fields.push(std::mem::take(&mut cur)),
            (false, '"') if cur.is_empty() => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (_, c) => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(cur);
    Some(fields)
}

/// Decodes URL-safe base64 without padding (the encoding `RECORD` uses).
fn decode_urlsafe_b64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1;
        out.extend_from_slice(&acc.to_be_bytes()[1..=n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        // RFC 4648 section 10 test vectors (URL-safe alphabet is identical for these).
        assert_eq!(decode_urlsafe_b64("").unwrap(), b"");
        assert_eq!(decode_urlsafe_b64("Zg").unwrap(), b"f");
        assert_eq!(decode_urlsafe_b64("Zm8").unwrap(), b"fo");
        assert_eq!(decode_urlsafe_b64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_urlsafe_b64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_urlsafe_b64("-_8").unwrap(), [0xfb, 0xff]);
        assert!(decode_urlsafe_b64("Z").is_none());
        assert!(decode_urlsafe_b64("Zm+v").is_none());
    }

    #[test]
    fn csv_fields_follow_python_quoting() {
        assert_eq!(
            csv_fields("a/b.py,sha256=x,12").unwrap(),
            ["a/b.py", "sha256=x", "12"]
        );
        assert_eq!(csv_fields("\"a,b\"\"c\",,").unwrap(), ["a,b\"c", "", ""]);
        assert!(csv_fields("\"open,,").is_none());
    }
}

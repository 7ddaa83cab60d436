//! Parses a newc archive back into records and a readable listing (for snapshots and
//! debugging). Input is hostile: every read is bounds-checked and nothing panics.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::{HEADER_LEN, TRAILER};

/// One parsed record (the trailer is not included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset of the header in the archive.
    pub offset: u64,
    /// The 13 header fields in on-disk order: ino, mode, uid, gid, nlink, mtime, filesize,
    /// devmajor, devminor, rdevmajor, rdevminor, namesize, check.
    pub fields: [u32; 13],
    /// The name, without its NUL.
    pub name: &'a [u8],
    /// The data (file content or symlink target).
    pub data: &'a [u8],
}

/// A parsed archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive<'a> {
    /// The records before the trailer, in archive order.
    pub records: Vec<Record<'a>>,
    /// Offset of the trailer header.
    pub trailer_offset: u64,
    /// Offset just past the trailer's padded name.
    pub end: u64,
    /// Zero bytes after `end` (block padding).
    pub padding: u64,
}

/// Why an archive does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The archive ends inside a record.
    #[error("cpio record at offset {offset}: truncated in the {what}")]
    Truncated {
        /// Offset of the record.
        offset: u64,
        /// `header`, `name` or `data`.
        what: &'static str,
    },
    /// Not `070701` or `070702`.
    #[error("cpio record at offset {offset}: bad magic")]
    BadMagic {
        /// Offset of the record.
        offset: u64,
    },
    /// A header field that is not 8 hex digits.
    #[error("cpio record at offset {offset}: field {field} is not hexadecimal")]
    BadField {
        /// Offset of the record.
        offset: u64,
        /// The field's name.
        field: &'static str,
    },
    /// The name is empty or not NUL-terminated.
    #[error("cpio record at offset {offset}: name is empty or not NUL-terminated")]
    BadName {
        /// Offset of the record.
        offset: u64,
    },
    /// Non-zero bytes after the trailer.
    #[error("cpio archive: non-zero byte at offset {offset} after the trailer")]
    TrailingData {
        /// The offset.
        offset: u64,
    },
}

const FIELD_NAMES: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

/// Parses a whole archive (up to its first trailer, then checks that only zeros follow).
pub fn parse(bytes: &[u8]) -> Result<Archive<'_>, Error> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    loop {
        let offset = pos as u64;
        let truncated = |what| Error::Truncated { offset, what };
        let end_header = pos.checked_add(HEADER_LEN).ok_or(truncated("header"))?;
        let header = bytes.get(pos..end_header).ok_or(truncated("header"))?;
        let (magic, rest) = header.split_at_checked(6).ok_or(truncated("header"))?;
        if magic != b"070701" && magic != b"070702" {
            return Err(Error::BadMagic { offset });
        }
        let mut fields = [0u32; 13];
        for (i, (slot, name)) in fields.iter_mut().zip(FIELD_NAMES).enumerate() {
            let hex = rest.get(i * 8..i * 8 + 8).ok_or(truncated("header"))?;
            *slot = parse_hex(hex).ok_or(Error::BadField {
                offset,
                field: name,
            })?;
        }
        let [_, _, _, _, _, _, filesize, _, _, _, _, namesize, _] = fields;
        let namesize = usize::try_from(namesize).map_err(|_| truncated("name"))?;
        let name_end = end_header.checked_add(namesize).ok_or(truncated("name"))?;
        let name_nul = bytes.get(end_header..name_end).ok_or(truncated("name"))?;
        let name = match name_nul.split_last() {
            Some((0, name)) if !name.is_empty() && !name.contains(&0) => name,
            _ => return Err(Error::BadName { offset }),
        };
        let data_start = align4(name_end).ok_or(truncated("name"))?;
        if name == TRAILER.as_bytes() {
            let end = data_start.min(bytes.len());
            let tail = bytes.get(end..).unwrap_or(&[]);
            if let Some(i) = tail.iter().position(|&b| b != 0) {
                return Err(Error::TrailingData {
                    offset: (end + i) as u64,
                });
            }
            return Ok(Archive {
                records,
                trailer_offset: offset,
                end: end as u64,
                padding: tail.len() as u64,
            });
        }
        let filesize = usize::try_from(filesize).map_err(|_| truncated("data"))?;
        let data_end = data_start.checked_add(filesize).ok_or(truncated("data"))?;
        let data = bytes.get(data_start..data_end).ok_or(truncated("data"))?;
        records.push(Record {
            offset,
            fields,
            name,
            data,
        });
        pos = align4(data_end).ok_or(truncated("data"))?;
    }
}

/// A line per record: offset, ino, type and permissions (octal), owner, nlink, mtime,
/// rdev, name, and the data (symlink target, or size and sha256 of file contents).
pub fn dump(bytes: &[u8]) -> Result<String, Error> {
    let archive = parse(bytes)?;
    let mut out = String::new();
    for r in &archive.records {
        let [ino, mode, uid, gid, nlink, mtime, size, devmaj, devmin, rmaj, rmin, _, check] =
            r.fields;
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{:08x} ino={ino} mode={mode:06o} {uid}:{gid} nlink={nlink} mtime={mtime} dev={devmaj}:{devmin} rdev={rmaj}:{rmin}",
            r.offset
        );
        if check != 0 {
            let _ = write!(out, " check={check:08x}");
        }
        let _ = write!(out, " {}", escape(r.name));
        match mode & 0o170000 {
            0o120000 => {
                let _ = write!(out, " -> {}", escape(r.data));
            }
            0o100000 => {
                let digest = hex::encode(Sha256::digest(r.data));
                let _ = write!(out, " size={size} sha256={digest}");
            }
            _ if size != 0 => {
                let _ = write!(out, " size={size}");
            }
            _ => {}
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{:08x} {TRAILER}\n{:08x} end, then {} zero bytes",
        archive.trailer_offset, archive.end, archive.padding
    );
    Ok(out)
}

fn parse_hex(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b).ok()?;
    if s.bytes().all(|c| c.is_ascii_hexdigit()) {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

fn escape(b: &[u8]) -> String {
    format!("\"{}\"", b.escape_ascii())
}

//! A deterministic initramfs: a `newc` (SVR4, magic `070701`) cpio archive.
//!
//! [`write_newc`] is a pure function of its entries and [`Options`]: entries are written in
//! path order (by components, so a parent precedes its children), inode numbers are assigned
//! 1, 2, 3, ... in that order, every mtime is [`Options::mtime`], device numbers of the
//! archive (`devmajor`/`devminor`) are 0, and the input order does not matter. The header
//! layout is the one `cpio(5)` and the kernel's `Documentation/driver-api/early-userspace/
//! buffer-format.rst` describe, written as GNU `cpio -o -H newc --reproducible` writes it
//! (uppercase hex, `TRAILER!!!` with nlink 1, optional padding to 512 bytes), so the two can
//! be compared entry by entry.
//!
//! An archive with no entries (just the trailer) is valid: the kernel unpacks nothing.
//!
//! [`dump`] parses an archive back into a readable listing.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use crate::tree::{Content, ContentSource, Directory, Entry, LeafKind, Tree};

pub mod dump;

/// `c_magic` of the newc format (no checksum).
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Length of a newc header: the magic and 13 eight-digit hex fields.
pub const HEADER_LEN: usize = 110;
/// Name of the last record.
pub const TRAILER: &str = "TRAILER!!!";
/// Block size the archive is padded to when [`Options::pad_to_block`] is set (GNU cpio's).
pub const BLOCK: u64 = 512;
/// The first inode number assigned. Changing it changes every archive.
pub const FIRST_INO: u32 = 1;

/// `S_IFMT` and the file type bits of `c_mode` (`cpio(5)`).
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;

/// How an archive is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// The mtime of every entry (the build's `source_date_epoch`; newc holds 32 bits).
    pub mtime: u32,
    /// Pad the archive with zeros to a multiple of [`BLOCK`] bytes.
    pub pad_to_block: bool,
}

/// One archive member.
pub struct CpioEntry<'a> {
    /// Path inside the archive: relative (`dev/console`), `/`-separated, no empty, `.` or
    /// `..` components, no NUL. A leading `/` is refused rather than stripped.
    pub path: String,
    /// Permission bits (`0o7777`); the type comes from [`CpioEntry::kind`].
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// What it is.
    pub kind: EntryKind<'a>,
}

/// The type and payload of a [`CpioEntry`].
pub enum EntryKind<'a> {
    /// A directory.
    Directory,
    /// A regular file whose bytes are held in memory.
    Bytes(std::borrow::Cow<'a, [u8]>),
    /// A regular file streamed from a content source (size known up front).
    Content {
        /// Size and digest.
        content: Content,
        /// Where the bytes are read from.
        source: &'a dyn ContentSource,
    },
    /// A symbolic link to the target (kept verbatim).
    Symlink(Vec<u8>),
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path that is not a clean relative path.
    #[error("initramfs entry `{path}`: {reason}")]
    InvalidPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Permission bits outside `0o7777`.
    #[error("initramfs entry `{path}`: mode {mode:#o} has bits outside 0o7777")]
    InvalidMode {
        /// The path.
        path: String,
        /// The mode given.
        mode: u32,
    },
    /// Two entries with the same path.
    #[error("initramfs entry `{path}` appears twice")]
    Duplicate {
        /// The path.
        path: String,
    },
    /// An entry whose parent directory is not in the archive.
    #[error("initramfs entry `{path}`: parent directory `{parent}` is not in the archive")]
    MissingParent {
        /// The path.
        path: String,
        /// The missing parent.
        parent: String,
    },
    /// A file or symlink larger than newc's 32-bit size field.
    #[error("initramfs entry `{path}`: {size} bytes do not fit newc's 32-bit size")]
    TooLarge {
        /// The path.
        path: String,
        /// The size.
        size: u64,
    },
    /// A content reader gave a different number of bytes than declared.
    #[error("initramfs entry `{path}`: content has {got} bytes, declared {expected}")]
    SizeMismatch {
        /// The path.
        path: String,
        /// Declared size.
        expected: u64,
        /// Bytes read (up to one past the declared size).
        got: u64,
    },
    /// Reading an entry's content failed.
    #[error("initramfs entry `{path}`: reading content: {source}")]
    Read {
        /// The path.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// A tree node newc (or this writer) cannot represent.
    #[error("initramfs entry `{path}`: {what} cannot be put in the initramfs")]
    Unsupported {
        /// The path.
        path: String,
        /// What (`a FIFO`, `extended attributes`, `a hard link`, ...).
        what: &'static str,
    },
    /// Writing the archive failed.
    #[error("writing initramfs at offset {offset}: {source}")]
    Write {
        /// Bytes written before the failure.
        offset: u64,
        /// The error.
        source: io::Error,
    },
}

/// Writes `entries` as a deterministic newc archive to `out`; returns the bytes written.
pub fn write_newc(
    entries: &[CpioEntry<'_>],
    options: &Options,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    let order = layout(entries)?;
    let subdirs = subdirectory_counts(entries);
    let mut w = Counting { out, written: 0 };
    for (i, &idx) in order.iter().enumerate() {
        // `i` < number of entries, which fits in memory; inode numbers beyond u32 would need
        // four billion entries.
        let ino = u32::try_from(i)
            .ok()
            .and_then(|i| i.checked_add(FIRST_INO))
            .ok_or_else(|| Error::TooLarge {
                path: entries[idx].path.clone(),
                size: i as u64,
            })?;
        let e = &entries[idx];
        let nlink = match e.kind {
            EntryKind::Directory => {
                2u32.saturating_add(subdirs.get(e.path.as_str()).copied().unwrap_or(0))
            }
            _ => 1,
        };
        write_entry(&mut w, e, ino, nlink, options.mtime)?;
    }
    let trailer = Header {
        nlink: 1,
        ..Header::default()
    };
    w.header(&trailer, TRAILER.as_bytes())?;
    if options.pad_to_block {
        let rem = w.written % BLOCK;
        if rem != 0 {
            w.zeros(BLOCK - rem)?;
        }
    }
    Ok(w.written)
}

/// The entries of a whole [`Tree`] (its root directory itself is not an entry; the kernel's
/// rootfs already exists). Refused: extended attributes (newc has none), FIFOs, sockets and
/// hard links (this writer gives every entry its own inode), and names that are not UTF-8.
pub fn entries_from_tree<'a>(
    tree: &Tree,
    source: &'a dyn ContentSource,
) -> Result<Vec<CpioEntry<'a>>, Error> {
    let mut links = vec![0usize; tree.leaves.len()];
    count_links(&tree.root, &mut links);
    let mut out = Vec::new();
    walk(tree, &tree.root, "", source, &links, &mut out)?;
    Ok(out)
}

fn count_links(dir: &Directory, links: &mut [usize]) {
    for entry in dir.entries.values() {
        match entry {
            Entry::Directory(d) => count_links(d, links),
            Entry::Leaf(id) => {
                if let Some(n) = links.get_mut(id.0) {
                    *n += 1;
                }
            }
        }
    }
}

fn walk<'a>(
    tree: &Tree,
    dir: &Directory,
    prefix: &str,
    source: &'a dyn ContentSource,
    links: &[usize],
    out: &mut Vec<CpioEntry<'a>>,
) -> Result<(), Error> {
    for (raw_name, entry) in &dir.entries {
        let name = String::from_utf8_lossy(raw_name);
        let path = if prefix.is_empty() {
            name.into_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let unsupported = |what| Error::Unsupported {
            path: path.clone(),
            what,
        };
        if std::str::from_utf8(raw_name).is_err() {
            return Err(unsupported("a name that is not UTF-8"));
        }
        let (meta, kind) = match entry {
            Entry::Directory(d) => (&d.meta, EntryKind::Directory),
            Entry::Leaf(id) => {
                let leaf = tree
                    .leaves
                    .get(id.0)
                    .ok_or_else(|| unsupported("a dangling leaf id"))?;
                if links.get(id.0).copied().unwrap_or(0) > 1 {
                    return Err(unsupported("a hard link"));
                }
                let kind = match &leaf.kind {
                    LeafKind::Regular(content) => EntryKind::Content {
                        content: *content,
                        source,
                    },
                    LeafKind::Symlink(t) => EntryKind::Symlink(t.clone()),
                    LeafKind::CharDevice(rdev) => EntryKind::CharDevice {
                        major: dev_major(*rdev),
                        minor: dev_minor(*rdev),
                    },
                    LeafKind::BlockDevice(rdev) => EntryKind::BlockDevice {
                        major: dev_major(*rdev),
                        minor: dev_minor(*rdev),
                    },
                    LeafKind::Fifo => return Err(unsupported("a FIFO")),
                    LeafKind::Socket => return Err(unsupported("a socket")),
                };
                (&leaf.meta, kind)
            }
        };
        if !meta.xattrs.is_empty() {
            return Err(unsupported("extended attributes"));
        }
        out.push(CpioEntry {
            path: path.clone(),
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            kind,
        });
        if let Entry::Directory(d) = entry {
            walk(tree, d, &path, source, links, out)?;
        }
    }
    Ok(())
}

/// Linux `major()` of a `makedev` encoding (glibc `sysmacros.h`).
fn dev_major(dev: u64) -> u32 {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as u32
}

/// Linux `minor()` of a `makedev` encoding.
fn dev_minor(dev: u64) -> u32 {
    ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32
}

impl<'a> CpioEntry<'a> {
    /// A directory owned by 0:0.
    pub fn directory(path: &str, mode: u32) -> Self {
        Self::new(path, mode, EntryKind::Directory)
    }

    /// A regular file with in-memory bytes, owned by 0:0.
    pub fn file(path: &str, mode: u32, data: impl Into<std::borrow::Cow<'a, [u8]>>) -> Self {
        Self::new(path, mode, EntryKind::Bytes(data.into()))
    }

    /// A symlink (mode 0777), owned by 0:0.
    pub fn symlink(path: &str, target: impl Into<Vec<u8>>) -> Self {
        Self::new(path, 0o777, EntryKind::Symlink(target.into()))
    }

    /// A character device owned by 0:0 (`/dev/console` is 5:1, mode 0600).
    pub fn char_device(path: &str, mode: u32, major: u32, minor: u32) -> Self {
        Self::new(path, mode, EntryKind::CharDevice { major, minor })
    }

    /// An entry of any kind, owned by 0:0.
    pub fn new(path: &str, mode: u32, kind: EntryKind<'a>) -> Self {
        CpioEntry {
            path: path.to_owned(),
            mode,
            uid: 0,
            gid: 0,
            kind,
        }
    }

    /// The same entry with another owner.
    pub fn owned_by(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

impl std::fmt::Debug for CpioEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpioEntry")
            .field("path", &self.path)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("type", &type_bits(&self.kind))
            .finish()
    }
}

/// Validates the entries and returns their indices in archive order.
fn layout(entries: &[CpioEntry<'_>]) -> Result<Vec<usize>, Error> {
    for e in entries {
        check_path(&e.path)?;
        if e.mode & !0o7777 != 0 {
            return Err(Error::InvalidMode {
                path: e.path.clone(),
                mode: e.mode,
            });
        }
    }
    let mut order: Vec<usize> = (0..entries.len()).collect();
    // Component-wise byte order: `a` < `a/b` < `a-b` (a plain string sort would put `a-b`
    // between `a` and `a/b`, and a parent would still come first, but this is the tree order).
    order.sort_by(|&a, &b| {
        let ka = entries[a].path.split('/').map(str::as_bytes);
        let kb = entries[b].path.split('/').map(str::as_bytes);
        ka.cmp(kb)
    });
    for pair in order.windows(2) {
        if let [a, b] = pair {
            if entries[*a].path == entries[*b].path {
                return Err(Error::Duplicate {
                    path: entries[*b].path.clone(),
                });
            }
        }
    }
    for &i in &order {
        let path = &entries[i].path;
        if let Some((parent, _)) = path.rsplit_once('/') {
            let found = order
                .binary_search_by(|&j| {
                    let kj = entries[j].path.split('/').map(str::as_bytes);
                    kj.cmp(parent.split('/').map(str::as_bytes))
                })
                .ok()
                .filter(|&pos| matches!(entries[order[pos]].kind, EntryKind::Directory));
            if found.is_none() {
                return Err(Error::MissingParent {
                    path: path.clone(),
                    parent: parent.to_owned(),
                });
            }
        }
    }
    Ok(order)
}

fn check_path(path: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::InvalidPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty path");
    }
    if path.starts_with('/') {
        return bad("absolute path (archive paths are relative)");
    }
    if path.contains('\0') {
        return bad("contains NUL");
    }
    if path == TRAILER {
        return bad("is the trailer's name");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("empty, `.` or `..` component");
    }
    Ok(())
}

/// Number of directories directly inside each directory, by path.
fn subdirectory_counts<'e>(entries: &'e [CpioEntry<'_>]) -> BTreeMap<&'e str, u32> {
    let mut counts = BTreeMap::new();
    for e in entries {
        if let (EntryKind::Directory, Some((parent, _))) = (&e.kind, e.path.rsplit_once('/')) {
            let n: &mut u32 = counts.entry(parent).or_default();
            *n = n.saturating_add(1);
        }
    }
    counts
}

fn type_bits(kind: &EntryKind<'_>) -> u32 {
    match kind {
        EntryKind::Directory => S_IFDIR,
        EntryKind::Bytes(_) | EntryKind::Content { .. } => S_IFREG,
        EntryKind::Symlink(_) => S_IFLNK,
        EntryKind::CharDevice { .. } => S_IFCHR,
        EntryKind::BlockDevice { .. } => S_IFBLK,
    }
}

fn write_entry(
    w: &mut Counting<'_>,
    e: &CpioEntry<'_>,
    ino: u32,
    nlink: u32,
    mtime: u32,
) -> Result<(), Error> {
    let size = match &e.kind {
        EntryKind::Bytes(b) => b.len() as u64,
        EntryKind::Content { content, .. } => content.size,
        EntryKind::Symlink(t) => t.len() as u64,
        _ => 0,
    };
    let filesize = u32::try_from(size).map_err(|_| Error::TooLarge {
        path: e.path.clone(),
        size,
    })?;
    let (rdevmajor, rdevminor) = match e.kind {
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            (major, minor)
        }
        _ => (0, 0),
    };
    let header = Header {
        ino,
        mode: type_bits(&e.kind) | e.mode,
        uid: e.uid,
        gid: e.gid,
        nlink,
        mtime,
        filesize,
        rdevmajor,
        rdevminor,
    };
    w.header(&header, e.path.as_bytes())?;
    match &e.kind {
        EntryKind::Bytes(b) => w.write(b)?,
        EntryKind::Symlink(t) => w.write(t)?,
        EntryKind::Content { content, source } => {
            let read_err = |source| Error::Read {
                path: e.path.clone(),
                source,
            };
            let reader = source.open(content).map_err(read_err)?;
            // Read one byte past the declared size to detect a long stream.
            let mut limited = reader.take(size.saturating_add(1));
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0u64;
            loop {
                let n = match limited.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(read_err(err)),
                };
                got = got.saturating_add(n as u64);
                if got > size {
                    break;
                }
                w.write(buf.get(..n).unwrap_or(&[]))?;
            }
            if got != size {
                return Err(Error::SizeMismatch {
                    path: e.path.clone(),
                    expected: size,
                    got,
                });
            }
        }
        _ => {}
    }
    w.zeros(pad4(size))?;
    Ok(())
}

/// Zero bytes needed after `len` bytes to reach a multiple of 4.
fn pad4(len: u64) -> u64 {
    (4 - len % 4) % 4
}

/// The 13 numeric header fields; `check`, `devmajor` and `devminor` are always 0.
#[derive(Default)]
struct Header {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    rdevmajor: u32,
    rdevminor: u32,
}

struct Counting<'w> {
    out: &'w mut dyn Write,
    written: u64,
}

impl Counting<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out.write_all(bytes).map_err(|source| Error::Write {
            offset: self.written,
            source,
        })?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn zeros(&mut self, n: u64) -> Result<(), Error> {
        const Z: [u8; 512] = [0; 512];
        let mut left = n;
        while left > 0 {
            let chunk = left.min(Z.len() as u64);
            // chunk <= 512.
            self.write(&Z[..chunk as usize])?;
            left -= chunk;
        }
        Ok(())
    }

    /// Writes the header, the name with its NUL, and the padding that aligns the data.
    fn header(&mut self, h: &Header, name: &[u8]) -> Result<(), Error> {
        let namesize = name.len() as u64 + 1;
        let fields = [
            h.ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            h.filesize,
            0, // devmajor
            0, // devminor
            h.rdevmajor,
            h.rdevminor,
            // Names come from `String`s validated above; a name over 4 GiB cannot be built.
            u32::try_from(namesize).unwrap_or(u32::MAX),
            0, // check
        ];
        let mut head = Vec::with_capacity(HEADER_LEN);
        head.extend_from_slice(NEWC_MAGIC);
        for f in fields {
            head.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.write(&head)?;
        self.write(name)?;
        self.write(&[0])?;
        self.zeros(pad4(HEADER_LEN as u64 + namesize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_decode_like_glibc() {
        // Python's os.makedev(4100, 70000) (glibc makedev) = 17592472306800.
        assert_eq!(dev_major(17592472306800), 4100);
        assert_eq!(dev_minor(17592472306800), 70000);
        assert_eq!((dev_major(0x501), dev_minor(0x501)), (5, 1));
    }

    #[test]
    fn padding() {
        assert_eq!([0, 1, 2, 3, 4, 5].map(pad4), [0, 3, 2, 1, 0, 3]);
    }
}

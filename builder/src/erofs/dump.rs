//! Reads an EROFS image back (the subset this crate writes: uncompressed, flat layouts,
//! inline xattrs) and prints a readable listing for snapshots and checks.
//!
//! The reader treats the image as hostile: every offset and length taken from it is
//! checked before use, and arithmetic is checked, so it returns an error rather than
//! panicking on any input.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use measurements::reader;

use super::format::{self, FileType, Inode, SuperBlock};

/// Errors from reading an image. Offsets are bytes from the start of the image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The image is shorter than the superblock.
    #[error("image too short for a superblock ({len} bytes)")]
    TooShort {
        /// Image length.
        len: usize,
    },
    /// Wrong superblock magic.
    #[error("bad superblock magic {magic:#x}")]
    BadMagic {
        /// The magic found.
        magic: u32,
    },
    /// A feature this reader does not handle.
    #[error("unsupported superblock field {field} = {value:#x}")]
    Unsupported {
        /// Superblock field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A structure lies (partly) outside the image.
    #[error("{what} at offset {offset} (+{len}) lies outside the image")]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A malformed inode.
    #[error("inode nid {nid}: {problem}")]
    BadInode {
        /// The inode.
        nid: u64,
        /// What is wrong.
        problem: &'static str,
    },
    /// A malformed directory.
    #[error("directory {path} (nid {nid}): {problem}")]
    BadDirectory {
        /// The directory's path.
        path: String,
        /// Its nid.
        nid: u64,
        /// What is wrong.
        problem: &'static str,
    },
}

/// An extended attribute read back: full name and value.
pub type Xattr = (Vec<u8>, Vec<u8>);

/// A parsed image over borrowed bytes.
#[derive(Debug)]
pub struct Image<'a> {
    bytes: &'a [u8],
    superblock: SuperBlock,
    block_size: u64,
}

/// One inode read back, with its position.
#[derive(Debug, Clone)]
pub struct InodeRef {
    /// Its nid.
    pub nid: u64,
    /// Byte offset of the record.
    pub offset: u64,
    /// The record.
    pub inode: Inode,
}

/// One directory entry read back.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// Name bytes.
    pub name: Vec<u8>,
    /// Target nid.
    pub nid: u64,
    /// `file_type` byte.
    pub file_type: u8,
}

impl<'a> Image<'a> {
    /// Parses and checks the superblock, and that the image holds every block it counts (a
    /// truncated image is an error, not a tree with its end silently missing).
    pub fn open(bytes: &'a [u8]) -> Result<Self, ReadError> {
        let image = Image::open_prefix(bytes)?;
        let counted = u64::from(image.superblock.blocks) * image.block_size;
        if (bytes.len() as u64) < counted {
            return Err(ReadError::OutOfBounds {
                what: "the blocks the superblock counts",
                offset: 0,
                len: counted,
            });
        }
        Ok(image)
    }

    /// Like [`Image::open`], for the first bytes of a larger image (the metadata of a
    /// multi-GiB image in tests): reads beyond `bytes` are still errors, one at a time.
    pub fn open_prefix(bytes: &'a [u8]) -> Result<Self, ReadError> {
        let superblock = reader::slice(bytes, format::SUPER_OFFSET, format::SUPER_SIZE)
            .and_then(SuperBlock::parse)
            .ok_or(ReadError::TooShort { len: bytes.len() })?;
        if superblock.magic != format::SUPER_MAGIC {
            return Err(ReadError::BadMagic {
                magic: superblock.magic,
            });
        }
        if !(9..=16).contains(&superblock.blkszbits) {
            return Err(ReadError::Unsupported {
                field: "blkszbits",
                value: superblock.blkszbits.into(),
            });
        }
        if superblock.feature_incompat != 0 {
            return Err(ReadError::Unsupported {
                field: "feature_incompat",
                value: superblock.feature_incompat.into(),
            });
        }
        if superblock.sb_extslots != 0 {
            return Err(ReadError::Unsupported {
                field: "sb_extslots",
                value: superblock.sb_extslots.into(),
            });
        }
        let block_size = 1u64 << superblock.blkszbits;
        Ok(Image {
            bytes,
            superblock,
            block_size,
        })
    }

    /// The superblock.
    pub fn superblock(&self) -> &SuperBlock {
        &self.superblock
    }

    fn slice(&self, what: &'static str, offset: u64, len: u64) -> Result<&'a [u8], ReadError> {
        let oob = || ReadError::OutOfBounds { what, offset, len };
        let start = usize::try_from(offset).map_err(|_| oob())?;
        let len = usize::try_from(len).map_err(|_| oob())?;
        reader::slice(self.bytes, start, len).ok_or_else(oob)
    }

    /// Reads the inode record at `nid`.
    pub fn inode(&self, nid: u64) -> Result<InodeRef, ReadError> {
        let offset = u64::from(self.superblock.meta_blkaddr)
            .checked_mul(self.block_size)
            .and_then(|m| m.checked_add(nid.checked_mul(format::INODE_SLOT as u64)?))
            .ok_or(ReadError::OutOfBounds {
                what: "inode",
                offset: u64::MAX,
                len: 0,
            })?;
        let head = self.slice("inode", offset, format::COMPACT_INODE_SIZE as u64)?;
        let i_format = reader::u16_le(head, 0).unwrap_or_default();
        let extended = i_format & format::INODE_VERSION_EXTENDED != 0;
        let len = if extended {
            format::EXTENDED_INODE_SIZE
        } else {
            format::COMPACT_INODE_SIZE
        };
        let record = self.slice("inode", offset, len as u64)?;
        let inode = Inode::parse(record).ok_or(ReadError::BadInode {
            nid,
            problem: "truncated",
        })?;
        if FileType::from_mode(inode.mode).is_none() {
            return Err(ReadError::BadInode {
                nid,
                problem: "unknown file type in i_mode",
            });
        }
        Ok(InodeRef { nid, offset, inode })
    }

    /// The inline xattrs of an inode, as `(full name, value)`.
    pub fn xattrs(&self, r: &InodeRef) -> Result<Vec<Xattr>, ReadError> {
        let size = r.inode.xattr_size() as u64;
        if size == 0 {
            return Ok(Vec::new());
        }
        let start = r.offset + r.inode.record_size() as u64;
        let body = self.slice("xattrs", start, size)?;
        let bad = |problem| ReadError::BadInode {
            nid: r.nid,
            problem,
        };
        if reader::u8_at(body, 4) != Some(0) {
            return Err(bad("shared xattrs are not supported"));
        }
        let mut rest = body
            .get(format::XATTR_IBODY_HEADER_SIZE..)
            .unwrap_or_default();
        let mut out = Vec::new();
        while !rest.is_empty() {
            let [name_len, index, v0, v1] =
                reader::array::<4>(rest, 0).ok_or(bad("truncated xattr"))?;
            let value_len = usize::from(u16::from_le_bytes([v0, v1]));
            let name_end = format::XATTR_ENTRY_SIZE + usize::from(name_len);
            let value_end = name_end + value_len;
            let suffix = reader::slice(rest, format::XATTR_ENTRY_SIZE, usize::from(name_len))
                .ok_or(bad("xattr name out of bounds"))?;
            let value =
                reader::slice(rest, name_end, value_len).ok_or(bad("xattr value out of bounds"))?;
            let prefix = format::XATTR_PREFIXES
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, p)| *p)
                .ok_or(bad("unknown xattr name index"))?;
            out.push(([prefix, suffix].concat(), value.to_vec()));
            let padded = value_end.next_multiple_of(format::XATTR_ALIGN);
            rest = rest.get(padded..).unwrap_or_default();
        }
        Ok(out)
    }

    /// An inode's data bytes (file content, directory blocks, symlink target), copied.
    pub fn data(&self, r: &InodeRef) -> Result<Vec<u8>, ReadError> {
        let (blocks, tail) = self.data_parts(r)?;
        Ok([blocks, tail].concat())
    }

    /// An inode's data as borrowed parts: the part in data blocks, then the inline tail.
    pub fn data_parts(&self, r: &InodeRef) -> Result<(&'a [u8], &'a [u8]), ReadError> {
        let size = r.inode.size;
        let bad = |problem| ReadError::BadInode {
            nid: r.nid,
            problem,
        };
        if size > self.bytes.len() as u64 {
            return Err(bad("size exceeds the image"));
        }
        match r.inode.datalayout {
            format::DATALAYOUT_FLAT_PLAIN => {
                if size == 0 {
                    return Ok((&[], &[]));
                }
                let start = u64::from(r.inode.i_u) * self.block_size;
                Ok((self.slice("data blocks", start, size)?, &[]))
            }
            format::DATALAYOUT_FLAT_INLINE => {
                let full = size / self.block_size * self.block_size;
                let tail = size - full;
                let tail_at = r.offset + r.inode.record_size() as u64 + r.inode.xattr_size() as u64;
                if tail_at % self.block_size + tail > self.block_size {
                    return Err(bad("inline data crosses a block boundary"));
                }
                let blocks = if full > 0 {
                    let start = u64::from(r.inode.i_u) * self.block_size;
                    self.slice("data blocks", start, full)?
                } else {
                    &[]
                };
                Ok((blocks, self.slice("inline data", tail_at, tail)?))
            }
            _ => Err(bad("unsupported data layout")),
        }
    }

    /// The entries of a directory inode, in on-disk order, checking the block structure.
    pub fn dir_entries(&self, r: &InodeRef, path: &str) -> Result<Vec<DirEntry>, ReadError> {
        let bad = |problem| ReadError::BadDirectory {
            path: path.to_owned(),
            nid: r.nid,
            problem,
        };
        let data = self.data(r)?;
        let mut out = Vec::new();
        let bs = usize::try_from(self.block_size).unwrap_or(usize::MAX);
        // A dirent's `nameoff` (le16 at +8) is where its name starts and where the previous
        // one's ends; the first one's also says how many dirents the block holds.
        let nameoff = |block: &[u8], i: usize| {
            let at = i.checked_mul(format::DIRENT_SIZE)?.checked_add(8)?;
            reader::u16_le(block, at).map(usize::from)
        };
        for block in data.chunks(bs) {
            let first = nameoff(block, 0).ok_or(bad("block too short for a dirent"))?;
            if first < format::DIRENT_SIZE
                || first % format::DIRENT_SIZE != 0
                || first >= block.len()
            {
                return Err(bad("bad first name offset"));
            }
            let count = first / format::DIRENT_SIZE;
            for i in 0..count {
                let d = reader::slice(block, i * format::DIRENT_SIZE, format::DIRENT_SIZE)
                    .ok_or(bad("dirent out of bounds"))?;
                let (Some(nid), Some(start), Some(file_type)) =
                    (reader::u64_le(d, 0), nameoff(d, 0), reader::u8_at(d, 10))
                else {
                    return Err(bad("dirent out of bounds"));
                };
                let end = if i + 1 < count {
                    nameoff(block, i + 1).ok_or(bad("dirent"))?
                } else {
                    block.len()
                };
                let name = block.get(start..end).ok_or(bad("name out of bounds"))?;
                let name = match name.split(|&b| b == 0).next() {
                    Some(n) if n.len() == name.len() => name,
                    Some(n) if i + 1 == count => n,
                    _ => return Err(bad("NUL inside a name")),
                };
                if name.is_empty() {
                    return Err(bad("empty name"));
                }
                out.push(DirEntry {
                    name: name.to_vec(),
                    nid,
                    file_type,
                });
            }
        }
        if !out.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(bad("names not strictly sorted"));
        }
        Ok(out)
    }
}

/// Parses `image` and returns a listing: the superblock, then every inode reachable from
/// the root in directory order (path, nid, type, mode, owner, size, links, layout, data
/// blocks, content digest, symlink target, device numbers, xattrs).
pub fn dump(image: &[u8]) -> Result<String, ReadError> {
    let img = Image::open(image)?;
    let sb = img.superblock();
    let mut out = String::new();
    let uuid = hex::encode(sb.uuid);
    let _ = writeln!(
        out,
        "superblock: magic={:#x} blkszbits={} root_nid={} inos={} build_time={} \
         build_time_nsec={} blocks={} meta_blkaddr={} xattr_blkaddr={} \
         feature_compat={:#x} feature_incompat={:#x} uuid={} volume_name={}",
        sb.magic,
        sb.blkszbits,
        sb.root_nid,
        sb.inos,
        sb.build_time,
        sb.build_time_nsec,
        sb.blocks,
        sb.meta_blkaddr,
        sb.xattr_blkaddr,
        sb.feature_compat,
        sb.feature_incompat,
        uuid,
        escape(sb.volume_name.split(|&b| b == 0).next().unwrap_or_default()),
    );
    let root = u64::from(sb.root_nid);
    let mut seen_dirs = BTreeSet::new();
    let mut seen = BTreeMap::new();
    // Depth-first, entries in on-disk order; an explicit stack keeps deep trees off the
    // call stack.
    let mut stack = vec![("/".to_owned(), root, root)];
    while let Some((path, nid, parent)) = stack.pop() {
        let r = img.inode(nid)?;
        if let Some(first) = seen.get(&nid) {
            let _ = writeln!(out, "{path} nid={nid} (hard link to {first})");
            continue;
        }
        seen.insert(nid, path.clone());
        describe(&img, &r, &path, &mut out)?;
        if FileType::from_mode(r.inode.mode) != Some(FileType::Directory) {
            continue;
        }
        if !seen_dirs.insert(nid) {
            return Err(ReadError::BadDirectory {
                path,
                nid,
                problem: "directory reached twice",
            });
        }
        let entries = img.dir_entries(&r, &path)?;
        let mut children = Vec::new();
        for e in entries {
            let bad = |problem| ReadError::BadDirectory {
                path: path.clone(),
                nid,
                problem,
            };
            match e.name.as_slice() {
                b"." if e.nid != nid => return Err(bad("`.` does not point to itself")),
                b".." if e.nid != parent => return Err(bad("`..` does not point to the parent")),
                b"." | b".." => {}
                name => {
                    let sep = if path == "/" { "" } else { "/" };
                    let child = format!("{path}{sep}{}", escape(name));
                    let target = img.inode(e.nid)?;
                    let ft = FileType::from_mode(target.inode.mode).map(|t| t as u8);
                    if ft != Some(e.file_type) {
                        return Err(bad("dirent file type differs from the inode's"));
                    }
                    children.push((child, e.nid, nid));
                }
            }
        }
        stack.extend(children.into_iter().rev());
    }
    Ok(out)
}

fn describe(img: &Image<'_>, r: &InodeRef, path: &str, out: &mut String) -> Result<(), ReadError> {
    let i = &r.inode;
    let ft = FileType::from_mode(i.mode);
    let kind = match ft {
        Some(FileType::Regular) => "file",
        Some(FileType::Directory) => "dir",
        Some(FileType::Symlink) => "symlink",
        Some(FileType::CharDevice) => "chardev",
        Some(FileType::BlockDevice) => "blockdev",
        Some(FileType::Fifo) => "fifo",
        Some(FileType::Socket) => "socket",
        None => "unknown",
    };
    let layout = match i.datalayout {
        format::DATALAYOUT_FLAT_PLAIN => "plain",
        format::DATALAYOUT_FLAT_INLINE => "inline",
        _ => "other",
    };
    let _ = write!(
        out,
        "{path} nid={} {kind} mode={:04o} uid={} gid={} size={} nlink={} inode={} layout={layout}",
        r.nid,
        i.mode & 0o7777,
        i.uid,
        i.gid,
        i.size,
        i.nlink,
        if i.extended { "extended" } else { "compact" },
    );
    if i.extended {
        let _ = write!(out, " mtime={}.{:09}", i.mtime, i.mtime_nsec);
    }
    match ft {
        Some(FileType::CharDevice | FileType::BlockDevice) => {
            let (major, minor) = format::decode_rdev(i.i_u);
            let _ = write!(out, " rdev={major}:{minor}");
        }
        Some(FileType::Fifo | FileType::Socket) => {}
        _ => {
            let bs = img.block_size;
            let full = if i.datalayout == format::DATALAYOUT_FLAT_INLINE {
                i.size / bs
            } else {
                i.size.div_ceil(bs)
            };
            if full > 0 {
                let _ = write!(out, " blocks={}+{full}", i.i_u);
            }
            if ft == Some(FileType::Symlink) {
                let _ = write!(out, " target={}", escape(&img.data(r)?));
            }
            if ft == Some(FileType::Regular) {
                let (blocks, tail) = img.data_parts(r)?;
                let digest = Sha256::new()
                    .chain_update(blocks)
                    .chain_update(tail)
                    .finalize();
                let _ = write!(out, " sha256={}", hex::encode(digest));
            }
        }
    }
    let _ = writeln!(out);
    for (name, value) in img.xattrs(r)? {
        let _ = writeln!(out, "  xattr {}={}", escape(&name), escape(&value));
    }
    Ok(())
}

/// Printable ASCII as is (quotes and backslash escaped), everything else as `\xNN`.
fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\\' | b'"' => {
                s.push('\\');
                s.push(c as char);
            }
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s
}

//! Pass 2: emits the planned image in one forward pass, streaming file contents.
//!
//! Everything here follows the [`Layout`]: the writer never decides a size or an offset, it
//! only checks that what it wrote landed where the plan said.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::format::{self, Inode};
use super::layout::{display, nid, Body, DirPlan, InodePlan, Layout};
use super::{Error, BLOCK_SIZE};
use crate::tree::{Content, ContentSource};

const BS: u64 = BLOCK_SIZE as u64;
const ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

/// Writes `layout` to `out`.
pub(crate) fn emit(
    layout: &Layout<'_>,
    content: &dyn ContentSource,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let mut w = Out { out, pos: 0 };
    w.pad_to(format::SUPER_OFFSET as u64)?;
    w.put(&layout.superblock.to_bytes())?;

    let mut buf = Vec::with_capacity(BLOCK_SIZE as usize);
    // The sha256 of each tail-packed file's inline tail, by inode: its stream must give the
    // same bytes when its whole blocks are copied below (32 bytes per such file).
    let mut tails = BTreeMap::new();
    for &index in &layout.by_offset {
        let inode = &layout.inodes[index];
        w.pad_to(inode.offset)?;
        buf.clear();
        head(&inode.record, inode, &mut buf);
        if inode.inline_len > 0 {
            match &inode.body {
                Body::Directory(plan) => {
                    let last = plan.blocks.len() - 1;
                    dir_block(plan, last, layout, &mut buf);
                }
                Body::Symlink(target) => buf.extend_from_slice(target),
                Body::File(c) => {
                    let start = buf.len();
                    buf.resize(start + inode.inline_len, 0);
                    let tail = &mut buf[start..];
                    if inode.blocks == 0 {
                        read_exact(content, c, &inode.path, tail)?;
                    } else {
                        // Only the tail, with a positioned read: the whole blocks are
                        // streamed into the data area below, which also checks the tail.
                        if let Err(source) = content.read_at(c, inode.blocks * BS, tail) {
                            return Err(tail_error(content, c, &inode.path, source));
                        }
                        tails.insert(index, <[u8; 32]>::from(Sha256::digest(tail)));
                    }
                }
                Body::None => {}
            }
        }
        w.put(&buf)?;
    }
    w.pad_to(layout.meta_end)?;

    // The data area is the contents' last read (the inline tails above came first): each is
    // released after the last inode whose blocks hold it, so the source may free its bytes
    // while the rest of the image is written ([`ContentSource::release`]).
    let mut last_use = HashMap::new();
    for (index, inode) in layout.inodes.iter().enumerate() {
        match &inode.body {
            Body::File(c) if inode.blocks > 0 => {
                last_use.insert(*c, index);
            }
            _ => {}
        }
    }
    let mut chunk = vec![0u8; 1 << 16];
    for (index, inode) in layout.inodes.iter().enumerate() {
        if inode.blocks == 0 {
            continue;
        }
        let start = u64::from(inode.record.i_u) * BS;
        if w.pos != start {
            return Err(Error::Internal {
                path: display(&inode.path),
                expected: start,
                at: w.pos,
            });
        }
        match &inode.body {
            Body::Directory(plan) => {
                // With an inline tail, the last directory block went to the metadata area.
                let full = plan.blocks.len() - usize::from(inode.inline_len > 0);
                for b in 0..full {
                    buf.clear();
                    dir_block(plan, b, layout, &mut buf);
                    w.put(&buf)?;
                    w.pad_to(w.pos.next_multiple_of(BS))?;
                }
            }
            Body::Symlink(target) => w.put(target)?,
            Body::File(c) => {
                let tail = if inode.inline_len > 0 {
                    let digest = tails.get(&index).ok_or_else(|| Error::Internal {
                        path: display(&inode.path),
                        expected: start,
                        at: w.pos,
                    })?;
                    Some((inode.inline_len, digest))
                } else {
                    None
                };
                stream(content, c, &inode.path, tail, &mut chunk, &mut w)?;
                if last_use.get(c) == Some(&index) {
                    content.release(c);
                }
            }
            Body::None => {}
        }
        w.pad_to(start + inode.blocks * BS)?;
    }
    if w.pos != layout.size {
        return Err(Error::Internal {
            path: "(end of image)".into(),
            expected: layout.size,
            at: w.pos,
        });
    }
    w.out.flush()?;
    Ok(())
}

/// [`super::Planned::file_extents`]: the offsets `emit` writes each file's bytes at.
pub(crate) fn file_extents(layout: &Layout<'_>) -> Vec<super::FileExtent> {
    let mut buf = Vec::new();
    layout
        .inodes
        .iter()
        .filter_map(|inode| {
            let Body::File(c) = &inode.body else {
                return None;
            };
            buf.clear();
            head(&inode.record, inode, &mut buf);
            let tail_at = inode.offset + buf.len() as u64;
            let inline = inode.inline_len as u64;
            let start = u64::from(inode.record.i_u) * BS;
            let in_blocks = if inode.blocks == 0 {
                0
            } else {
                c.size - inline
            };
            Some(super::FileExtent {
                content: **c,
                data: start..start + in_blocks,
                tail: tail_at..tail_at + inline,
            })
        })
        .collect()
}

/// Appends the inode record and its inline xattr body to `buf`.
fn head(record: &Inode, inode: &InodePlan<'_>, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.resize(start + record.record_size(), 0);
    record.write_to(&mut buf[start..]);
    if inode.xattrs.is_empty() {
        return;
    }
    // erofs_xattr_ibody_header: no shared xattrs, everything else reserved (zero).
    buf.extend_from_slice(&[0; format::XATTR_IBODY_HEADER_SIZE]);
    for (index, suffix, value) in &inode.xattrs {
        let entry_start = buf.len();
        // The layout checked that the suffix fits u8 and the value u16.
        buf.push(suffix.len() as u8);
        buf.push(*index);
        buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
        buf.extend_from_slice(suffix);
        buf.extend_from_slice(value);
        buf.resize(
            entry_start + super::layout::xattr_entry_len(suffix, value),
            0,
        );
    }
}

/// Appends block `b` of a directory (dirents, then names; unpadded) to `buf`.
fn dir_block(plan: &DirPlan<'_>, b: usize, layout: &Layout<'_>, buf: &mut Vec<u8>) {
    let (start, end) = plan.blocks[b];
    let entries = &plan.entries[start..end];
    let mut nameoff = entries.len() * format::DIRENT_SIZE;
    for (name, child, ftype) in entries {
        buf.extend_from_slice(&nid(layout.inodes[*child].offset).to_le_bytes());
        // nameoff < BLOCK_SIZE: the packing keeps each block's entries within one block.
        buf.extend_from_slice(&(nameoff as u16).to_le_bytes());
        buf.push(*ftype as u8);
        buf.push(0);
        nameoff += name.len();
    }
    for (name, _, _) in entries {
        buf.extend_from_slice(name);
    }
}

/// Reads exactly `into.len()` (= the content's size) bytes and checks the stream ends there.
fn read_exact(
    content: &dyn ContentSource,
    c: &Content,
    path: &[u8],
    into: &mut [u8],
) -> Result<(), Error> {
    let mut reader = open(content, c, path)?;
    fill(&mut *reader, c, path, 0, into)?;
    expect_end(&mut *reader, c, path)
}

/// Fills `into` from `reader`, which has given `before` bytes of the content already.
fn fill(
    reader: &mut dyn Read,
    c: &Content,
    path: &[u8],
    before: u64,
    into: &mut [u8],
) -> Result<(), Error> {
    let mut got = 0;
    while got < into.len() {
        match reader.read(&mut into[got..]) {
            Ok(0) => return Err(short(path, c, before + got as u64)),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::ReadContent {
                    path: display(path),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Copies the content to `w` in chunks, checking its length. With `tail = Some((len,
/// sha256))` the last `len` bytes were stored inline already: they are read, not written,
/// and must have that digest.
fn stream(
    content: &dyn ContentSource,
    c: &Content,
    path: &[u8],
    tail: Option<(usize, &[u8; 32])>,
    chunk: &mut [u8],
    w: &mut Out<'_>,
) -> Result<(), Error> {
    let mut reader = open(content, c, path)?;
    let tail_len = tail.map_or(0, |(len, _)| len as u64);
    let mut left = c.size.saturating_sub(tail_len);
    while left > 0 {
        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match reader.read(&mut chunk[..want]) {
            Ok(0) => return Err(short(path, c, c.size - tail_len - left)),
            Ok(n) => {
                w.put(&chunk[..n])?;
                left -= n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::ReadContent {
                    path: display(path),
                    source,
                })
            }
        }
    }
    if let Some((len, digest)) = tail {
        // len < BLOCK_SIZE <= chunk.len() (the layout's tail is `size % BLOCK_SIZE`).
        let into = chunk.get_mut(..len).ok_or_else(|| Error::Internal {
            path: display(path),
            expected: len as u64,
            at: 0,
        })?;
        fill(&mut *reader, c, path, c.size - tail_len, into)?;
        if <[u8; 32]>::from(Sha256::digest(&*into)) != *digest {
            return Err(Error::ContentChanged {
                path: display(path),
            });
        }
    }
    expect_end(&mut *reader, c, path)
}

fn open<'c>(
    content: &'c dyn ContentSource,
    c: &Content,
    path: &[u8],
) -> Result<Box<dyn Read + 'c>, Error> {
    content.open(c).map_err(|source| Error::OpenContent {
        path: display(path),
        source,
    })
}

fn expect_end(reader: &mut dyn Read, c: &Content, path: &[u8]) -> Result<(), Error> {
    let mut one = [0u8; 1];
    loop {
        match reader.read(&mut one) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(Error::ContentTooLong {
                    path: display(path),
                    expected: c.size,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::ReadContent {
                    path: display(path),
                    source,
                })
            }
        }
    }
}

/// The error for a failed positioned read of a tail: a short content is reported with the
/// length its stream has (counted here, on this error path only), like a short stream.
fn tail_error(
    content: &dyn ContentSource,
    c: &Content,
    path: &[u8],
    source: std::io::Error,
) -> Error {
    if source.kind() == std::io::ErrorKind::UnexpectedEof {
        let counted = open(content, c, path).and_then(|mut r| {
            std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| Error::ReadContent {
                path: display(path),
                source: e,
            })
        });
        if let Ok(actual) = counted {
            if actual < c.size {
                return short(path, c, actual);
            }
        }
    }
    Error::ReadContent {
        path: display(path),
        source,
    }
}

fn short(path: &[u8], c: &Content, actual: u64) -> Error {
    Error::ContentTooShort {
        path: display(path),
        expected: c.size,
        actual,
    }
}

/// The output with its position, so every write can be checked against the plan.
struct Out<'w> {
    out: &'w mut dyn Write,
    pos: u64,
}

impl Out<'_> {
    fn put(&mut self, b: &[u8]) -> Result<(), Error> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, to: u64) -> Result<(), Error> {
        if to < self.pos {
            return Err(Error::Internal {
                path: "(padding)".into(),
                expected: to,
                at: self.pos,
            });
        }
        while self.pos < to {
            let n = (to - self.pos).min(BS) as usize;
            self.put(&ZEROS[..n])?;
        }
        Ok(())
    }
}

//! Pass 1: from the tree to a complete plan of the image — every inode's nid, on-disk
//! record, xattr entries, data layout, size and first block — without reading any content.
//!
//! Decisions (each changes the image bytes, so changing one is a format change):
//! - Inodes are taken in depth-first pre-order of the tree, entries in raw-name order
//!   (`BTreeMap` order); a hard-linked leaf gets its inode where it is first reached
//!   (`i_ino` counts in this order).
//! - Each inode's record (inode, xattrs, inline tail, rounded up to 32 bytes) is placed, in
//!   that order, best-fit in the metadata area, as mkfs.erofs does: into the fullest block
//!   that still has room for all of it (the lowest-numbered of equally full ones), else into
//!   a new block at the end. A record never straddles a block unless it is longer than one
//!   (large xattrs: it then starts a new block). So nids follow the placement, not the tree.
//!   The root is placed first, right after the superblock (nid 36, unless its record does
//!   not fit there), so its nid always fits the superblock's 16-bit `root_nid`.
//! - The metadata area starts at block 0 (`meta_blkaddr = 0`); the data area follows it,
//!   block-aligned, with each inode's blocks contiguous and in tree order.
//! - Compact 32-byte inodes unless uid, gid or nlink exceed 16 bits or the size exceeds 32
//!   bits; then extended 64-byte ones. All timestamps equal the epoch either way: compact
//!   inodes inherit the superblock build time, extended ones store it.
//! - Tail packing, as mkfs.erofs does for uncompressed data: the data's last partial block
//!   (file contents, directory blocks, symlink targets; `size % 4096` bytes, not zero) is
//!   stored inline right after the inode and its xattrs (`FLAT_INLINE`) when the inode, its
//!   xattrs and the tail fit in one block, its whole blocks (if any) in the data area from
//!   `raw_blkaddr`; the record then goes where it does not straddle a block (see below).
//!   Anything else (a size that is a multiple of 4096, or a tail that does not fit) is
//!   `FLAT_PLAIN`: whole blocks, the last zero-padded. Empty data is `FLAT_PLAIN` with no
//!   blocks.
//! - Xattrs are all inline (no shared xattr area), in full-name order, with the kernel's
//!   prefix indexes; a name with no known prefix is an error rather than silently dropped.

use std::collections::{BTreeMap, BTreeSet};

use super::format::{self, FileType, Inode, SuperBlock};
use super::{Error, Options, BLOCK_SIZE};
use crate::tree::{Content, Directory, Entry, LeafKind, Metadata, Tree};

const BS: u64 = BLOCK_SIZE as u64;
const SLOT: u64 = format::INODE_SLOT as u64;

/// One inline xattr: `(name index, name suffix, value)`.
pub(crate) type XattrEntry<'t> = (u8, &'t [u8], &'t [u8]);

/// The whole image, planned.
#[derive(Debug)]
pub(crate) struct Layout<'t> {
    /// Inodes in tree order (see the module docs); index 0 is the root.
    pub(crate) inodes: Vec<InodePlan<'t>>,
    /// Indexes into `inodes` in the order of their records in the image (by offset).
    pub(crate) by_offset: Vec<usize>,
    /// The superblock, complete.
    pub(crate) superblock: SuperBlock,
    /// End of the metadata area in bytes (block-aligned): the first data block starts here.
    pub(crate) meta_end: u64,
    /// Image size in bytes.
    pub(crate) size: u64,
}

/// One inode, planned.
#[derive(Debug)]
pub(crate) struct InodePlan<'t> {
    /// The first path that reaches this inode (`/` for the root), for error messages.
    pub(crate) path: Vec<u8>,
    /// Byte offset of the inode record in the image.
    pub(crate) offset: u64,
    /// The record, complete (including `i_u`).
    pub(crate) record: Inode,
    /// Inline xattr entries: `(name index, name suffix, value)`.
    pub(crate) xattrs: Vec<XattrEntry<'t>>,
    /// What the data is.
    pub(crate) body: Body<'t>,
    /// Bytes of data stored inline after the xattrs: the tail, the last `size % 4096`.
    pub(crate) inline_len: usize,
    /// Number of data blocks at `record.i_u`: the whole blocks before an inline tail, or all
    /// of `FLAT_PLAIN` data (0 for data that is all inline, empty or device inodes).
    pub(crate) blocks: u64,
}

/// Where an inode's data comes from.
#[derive(Debug)]
pub(crate) enum Body<'t> {
    /// A directory: entries (with `.` and `..`) in name order, split into blocks.
    Directory(DirPlan<'t>),
    /// A regular file's content, streamed from the content source.
    File(&'t Content),
    /// A symlink target.
    Symlink(&'t [u8]),
    /// No data (devices, fifos, sockets).
    None,
}

/// A directory's entries and how they are packed into blocks.
#[derive(Debug)]
pub(crate) struct DirPlan<'t> {
    /// `(name, inode index, type)`, sorted by name bytes.
    pub(crate) entries: Vec<(&'t [u8], usize, FileType)>,
    /// Half-open ranges of `entries` per block. A name never crosses a block boundary.
    pub(crate) blocks: Vec<(usize, usize)>,
}

impl DirPlan<'_> {
    /// Bytes one block's entries take: dirents then names.
    pub(crate) fn block_used(&self, (start, end): (usize, usize)) -> usize {
        self.entries[start..end]
            .iter()
            .map(|(n, _, _)| format::DIRENT_SIZE + n.len())
            .sum()
    }

    /// `i_size`: whole blocks before the last, plus what the last one uses.
    fn size(&self) -> u64 {
        match self.blocks.last() {
            None => 0,
            Some(&last) => (self.blocks.len() as u64 - 1) * BS + self.block_used(last) as u64,
        }
    }
}

/// Plans the image for `tree`.
pub(crate) fn plan<'t>(tree: &'t Tree, options: &Options) -> Result<Layout<'t>, Error> {
    let mut walk = Walk {
        tree,
        nodes: Vec::new(),
        leaf_inode: vec![None; tree.leaves.len()],
        leaf_nlink: vec![0; tree.leaves.len()],
    };
    walk.tree(&tree.root)?;

    let mut inodes = Vec::with_capacity(walk.nodes.len());
    let mut packer = Packer::new((format::SUPER_OFFSET + format::SUPER_SIZE) as u64);
    for (index, node) in walk.nodes.into_iter().enumerate() {
        let (meta, body, ftype, nlink, i_u_special) = match node.what {
            What::Directory {
                meta,
                plan,
                subdirs,
            } => (
                meta,
                Body::Directory(plan),
                FileType::Directory,
                2 + subdirs,
                0,
            ),
            What::Leaf(id) => {
                let leaf = &tree.leaves[id];
                let nlink = walk.leaf_nlink[id];
                let path = || display(&node.path);
                match &leaf.kind {
                    LeafKind::Regular(c) => {
                        (&leaf.meta, Body::File(c), FileType::Regular, nlink, 0)
                    }
                    LeafKind::Symlink(t) => {
                        (&leaf.meta, Body::Symlink(t), FileType::Symlink, nlink, 0)
                    }
                    LeafKind::CharDevice(r) | LeafKind::BlockDevice(r) => {
                        let ft = if matches!(leaf.kind, LeafKind::CharDevice(_)) {
                            FileType::CharDevice
                        } else {
                            FileType::BlockDevice
                        };
                        let rdev = format::encode_rdev(*r).ok_or_else(|| Error::RdevTooLarge {
                            path: path(),
                            rdev: *r,
                        })?;
                        (&leaf.meta, Body::None, ft, nlink, rdev)
                    }
                    LeafKind::Fifo => (&leaf.meta, Body::None, FileType::Fifo, nlink, 0),
                    LeafKind::Socket => (&leaf.meta, Body::None, FileType::Socket, nlink, 0),
                }
            }
        };
        let size = match &body {
            Body::Directory(p) => p.size(),
            Body::File(c) => c.size,
            Body::Symlink(t) => t.len() as u64,
            Body::None => 0,
        };
        if let Body::Symlink(t) = &body {
            if t.is_empty() || t.len() >= BLOCK_SIZE as usize || t.contains(&0) {
                return Err(Error::InvalidSymlink {
                    path: display(&node.path),
                });
            }
        }
        let xattrs = xattr_entries(meta, &node.path)?;
        let xattr_body = xattr_body_len(&xattrs);
        let xattr_icount = match xattr_body {
            0 => 0,
            n => u16::try_from((n - format::XATTR_IBODY_HEADER_SIZE) / 4 + 1).map_err(|_| {
                Error::XattrsTooLarge {
                    path: display(&node.path),
                }
            })?,
        };
        let extended = meta.uid > u32::from(u16::MAX)
            || meta.gid > u32::from(u16::MAX)
            || nlink > u32::from(u16::MAX)
            || size > u64::from(u32::MAX);
        let record_size = if extended {
            format::EXTENDED_INODE_SIZE
        } else {
            format::COMPACT_INODE_SIZE
        };
        let head = (record_size + xattr_body) as u64;
        // The kernel maps a FLAT_INLINE inode's last block (`size.div_ceil(BS) - 1`) to the
        // inline tail, so a size that is a multiple of the block size must be FLAT_PLAIN.
        let tail = size % BS;
        let inline = tail > 0 && head + tail <= BS;
        let (datalayout, inline_len, blocks) = if inline {
            // tail < BS: fits usize.
            (format::DATALAYOUT_FLAT_INLINE, tail as usize, size / BS)
        } else {
            (format::DATALAYOUT_FLAT_PLAIN, 0, size.div_ceil(BS))
        };
        let offset = packer.place((head + inline_len as u64).next_multiple_of(SLOT));
        let record = Inode {
            extended,
            datalayout,
            xattr_icount,
            mode: ftype.mode_bits() | (meta.mode & 0o7777) as u16,
            nlink,
            size,
            i_u: i_u_special,
            ino: u32::try_from(index + 1).map_err(|_| Error::TooManyInodes)?,
            uid: meta.uid,
            gid: meta.gid,
            mtime: if extended { options.epoch } else { 0 },
            mtime_nsec: 0,
        };
        inodes.push(InodePlan {
            path: node.path,
            offset,
            record,
            xattrs,
            body,
            inline_len,
            blocks,
        });
    }

    let meta_end = packer.blocks * BS;
    let mut by_offset: Vec<usize> = (0..inodes.len()).collect();
    by_offset.sort_unstable_by_key(|&i| inodes[i].offset);
    let mut block = meta_end / BS;
    for inode in &mut inodes {
        if inode.blocks > 0 {
            inode.record.i_u = u32::try_from(block).map_err(|_| Error::ImageTooLarge)?;
            block += inode.blocks;
        }
    }
    let blocks = u32::try_from(block).map_err(|_| Error::ImageTooLarge)?;
    let root_nid = u16::try_from(inodes[0].offset / format::INODE_SLOT as u64)
        .map_err(|_| Error::ImageTooLarge)?;
    let superblock = SuperBlock {
        magic: format::SUPER_MAGIC,
        checksum: 0,
        feature_compat: format::FEATURE_COMPAT_MTIME,
        blkszbits: BLOCK_SIZE.trailing_zeros() as u8,
        sb_extslots: 0,
        root_nid,
        inos: inodes.len() as u64,
        build_time: options.epoch,
        build_time_nsec: 0,
        blocks,
        meta_blkaddr: 0,
        xattr_blkaddr: 0,
        uuid: options.uuid,
        volume_name: [0; 16],
        feature_incompat: 0,
    };
    Ok(Layout {
        inodes,
        by_offset,
        superblock,
        meta_end,
        size: block * BS,
    })
}

/// Best-fit placement of records in the metadata area (module docs). Every length and fill is
/// a multiple of 32, so every record starts on an inode slot.
struct Packer {
    /// Blocks with room left, by the bytes they use: used → block numbers.
    open: BTreeMap<u64, BTreeSet<u64>>,
    /// Blocks in the metadata area so far.
    blocks: u64,
}

impl Packer {
    /// An area whose block 0 has its first `used` bytes taken (the superblock).
    fn new(used: u64) -> Packer {
        let mut packer = Packer {
            open: BTreeMap::new(),
            blocks: 1,
        };
        packer.reopen(0, used);
        packer
    }

    fn reopen(&mut self, block: u64, used: u64) {
        if !used.is_multiple_of(BS) {
            self.open.entry(used % BS).or_default().insert(block);
        }
    }

    /// Places a record of `len` bytes and returns its byte offset.
    fn place(&mut self, len: u64) -> u64 {
        if len <= BS {
            let best = self
                .open
                .range_mut(..=BS - len)
                .next_back()
                .and_then(|(&used, blocks)| Some((used, blocks.pop_first()?)));
            if let Some((used, block)) = best {
                if self.open.get(&used).is_some_and(BTreeSet::is_empty) {
                    self.open.remove(&used);
                }
                self.reopen(block, used + len);
                return block * BS + used;
            }
        }
        let block = self.blocks;
        self.blocks += len.div_ceil(BS);
        self.reopen(self.blocks - 1, len);
        block * BS
    }
}

/// Nid of an inode at `offset` (the metadata area starts at byte 0).
pub(crate) fn nid(offset: u64) -> u64 {
    offset / format::INODE_SLOT as u64
}

/// A path for error messages (lossy UTF-8: names are bytes).
pub(crate) fn display(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

struct Walk<'t> {
    tree: &'t Tree,
    nodes: Vec<Node<'t>>,
    leaf_inode: Vec<Option<usize>>,
    leaf_nlink: Vec<u32>,
}

struct Node<'t> {
    path: Vec<u8>,
    what: What<'t>,
}

enum What<'t> {
    Directory {
        meta: &'t Metadata,
        plan: DirPlan<'t>,
        subdirs: u32,
    },
    Leaf(usize),
}

/// A directory being numbered: the walk keeps one per level on an explicit stack, so a
/// deep tree cannot overflow the call stack.
struct Frame<'t> {
    dir: &'t Directory,
    name: &'t [u8],
    me: usize,
    path: Vec<u8>,
    next: std::collections::btree_map::Iter<'t, Vec<u8>, Entry>,
    entries: Vec<(&'t [u8], usize, FileType)>,
    subdirs: u32,
}

impl<'t> Walk<'t> {
    /// Starts numbering a directory: pushes its node and returns its frame.
    fn open(
        &mut self,
        dir: &'t Directory,
        name: &'t [u8],
        path: Vec<u8>,
        parent: usize,
    ) -> Frame<'t> {
        let me = self.nodes.len();
        let parent = if me == 0 { 0 } else { parent };
        self.nodes.push(Node {
            path: path.clone(),
            what: What::Directory {
                meta: &dir.meta,
                plan: DirPlan {
                    entries: Vec::new(),
                    blocks: Vec::new(),
                },
                subdirs: 0,
            },
        });
        Frame {
            dir,
            name,
            me,
            path,
            next: dir.entries.iter(),
            entries: vec![
                (b".", me, FileType::Directory),
                (b"..", parent, FileType::Directory),
            ],
            subdirs: 0,
        }
    }

    /// Numbers `root` and everything under it in depth-first pre-order.
    fn tree(&mut self, root: &'t Directory) -> Result<(), Error> {
        let mut stack = vec![self.open(root, b"", b"/".to_vec(), 0)];
        while let Some(frame) = stack.last_mut() {
            let Some((name, entry)) = frame.next.next() else {
                // Directory done: sort (`.` and `..` among the names), pack, hand it to the parent.
                let Some(mut done) = stack.pop() else { break };
                done.entries.sort_by(|a, b| a.0.cmp(b.0));
                let blocks = pack(&done.entries);
                self.nodes[done.me].what = What::Directory {
                    meta: &done.dir.meta,
                    plan: DirPlan {
                        entries: done.entries,
                        blocks,
                    },
                    subdirs: done.subdirs,
                };
                if let Some(parent) = stack.last_mut() {
                    parent
                        .entries
                        .push((done.name, done.me, FileType::Directory));
                    parent.subdirs += 1;
                }
                continue;
            };
            let mut child_path = frame.path.clone();
            if frame.me != 0 {
                child_path.push(b'/');
            }
            child_path.extend_from_slice(name);
            check_name(name, &child_path)?;
            match entry {
                Entry::Directory(sub) => {
                    let me = frame.me;
                    let child = self.open(sub, name, child_path, me);
                    stack.push(child);
                }
                Entry::Leaf(id) => {
                    let leaf = self
                        .tree
                        .leaves
                        .get(id.0)
                        .ok_or_else(|| Error::DanglingLeaf {
                            path: display(&child_path),
                            leaf: id.0,
                        })?;
                    let index = match self.leaf_inode[id.0] {
                        Some(index) => index,
                        None => {
                            let index = self.nodes.len();
                            self.nodes.push(Node {
                                path: child_path,
                                what: What::Leaf(id.0),
                            });
                            self.leaf_inode[id.0] = Some(index);
                            index
                        }
                    };
                    let nlink = &mut self.leaf_nlink[id.0];
                    *nlink = nlink.checked_add(1).ok_or(Error::TooManyInodes)?;
                    frame.entries.push((name, index, leaf_type(&leaf.kind)));
                }
            }
        }
        Ok(())
    }
}

fn leaf_type(kind: &LeafKind) -> FileType {
    match kind {
        LeafKind::Regular(_) => FileType::Regular,
        LeafKind::Symlink(_) => FileType::Symlink,
        LeafKind::CharDevice(_) => FileType::CharDevice,
        LeafKind::BlockDevice(_) => FileType::BlockDevice,
        LeafKind::Fifo => FileType::Fifo,
        LeafKind::Socket => FileType::Socket,
    }
}

/// Splits sorted entries into blocks, greedily, so that no dirent or name crosses a block.
fn pack(entries: &[(&[u8], usize, FileType)]) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, (name, _, _)) in entries.iter().enumerate() {
        let need = format::DIRENT_SIZE + name.len();
        if used + need > BLOCK_SIZE as usize {
            blocks.push((start, i));
            (start, used) = (i, 0);
        }
        used += need;
    }
    blocks.push((start, entries.len()));
    blocks
}

fn check_name(name: &[u8], path: &[u8]) -> Result<(), Error> {
    if name.len() > format::NAME_LEN {
        return Err(Error::NameTooLong {
            path: display(path),
            len: name.len(),
        });
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::InvalidName {
            path: display(path),
        });
    }
    Ok(())
}

fn xattr_entries<'t>(meta: &'t Metadata, path: &[u8]) -> Result<Vec<XattrEntry<'t>>, Error> {
    let mut out = Vec::with_capacity(meta.xattrs.len());
    for (name, value) in &meta.xattrs {
        let found = format::XATTR_PREFIXES.iter().find_map(|&(index, prefix)| {
            let suffix = name.strip_prefix(prefix)?;
            // The ACL indexes name one attribute each: nothing may follow the prefix.
            (index > 3 || index == 1 || suffix.is_empty()).then_some((index, suffix))
        });
        let xattr = || (display(path), display(name));
        let Some((index, suffix)) = found else {
            let (path, name) = xattr();
            return Err(Error::UnsupportedXattr { path, name });
        };
        if suffix.len() > usize::from(u8::MAX) || value.len() > usize::from(u16::MAX) {
            let (path, name) = xattr();
            return Err(Error::XattrTooLong { path, name });
        }
        out.push((index, suffix, value.as_slice()));
    }
    Ok(out)
}

/// Bytes of one xattr entry, padded.
pub(crate) fn xattr_entry_len(suffix: &[u8], value: &[u8]) -> usize {
    (format::XATTR_ENTRY_SIZE + suffix.len() + value.len()).next_multiple_of(format::XATTR_ALIGN)
}

fn xattr_body_len(xattrs: &[XattrEntry<'_>]) -> usize {
    if xattrs.is_empty() {
        return 0;
    }
    format::XATTR_IBODY_HEADER_SIZE
        + xattrs
            .iter()
            .map(|(_, s, v)| xattr_entry_len(s, v))
            .sum::<usize>()
}

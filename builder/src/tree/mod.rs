//! The assembled root file system: an ordered, in-memory tree of names and metadata.
//!
//! File *contents* are not held here: a regular file carries a [`Content`] (size and key)
//! whose bytes live in a [`ContentSource`] (on disk during a build, see [`crate::content`]).
//! Directory entries are ordered by raw name bytes (`BTreeMap<Vec<u8>, _>`), which is the
//! order EROFS wants and makes every traversal deterministic.
//!
//! Hard links are two directory entries naming the same [`LeafId`]; a leaf's link count is
//! the number of entries that name it, computed by the writer from the tree.

use std::collections::BTreeMap;
use std::io::Read;

pub mod apply;
pub mod wheel;

pub use crate::content::{Content, ContentSource};

/// Ownership, permission bits and extended attributes of one inode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Permission bits only (`0o7777`: rwx, setuid, setgid, sticky). The file type is the
    /// node kind, never these bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Extended attributes, full names (`user.foo`, `security.capability`) to values.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A directory: its own metadata and its entries ordered by raw name bytes.
/// Names are single path components: never empty, never `.` or `..`, never containing `/` or NUL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directory {
    /// The directory inode's metadata.
    pub meta: Metadata,
    /// Entries by name.
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A subdirectory (directories are never hard-linked).
    Directory(Directory),
    /// A non-directory inode in [`Tree::leaves`]; several entries may name the same leaf.
    Leaf(LeafId),
}

/// Index of a leaf in [`Tree::leaves`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafId(pub usize);

/// A non-directory inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// Ownership, mode, xattrs.
    pub meta: Metadata,
    /// What kind of inode, with its payload.
    pub kind: LeafKind,
}

/// The kind of a non-directory inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafKind {
    /// A regular file.
    Regular(Content),
    /// A symbolic link; the target is data, kept verbatim.
    Symlink(Vec<u8>),
    /// A character device with its `rdev` (Linux `makedev` encoding).
    CharDevice(u64),
    /// A block device with its `rdev`.
    BlockDevice(u64),
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

/// A whole file system tree: the root directory plus the table of non-directory inodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// The root directory (`/`).
    pub root: Directory,
    /// Non-directory inodes; entries refer to them by [`LeafId`]. A leaf no entry names
    /// (its last name was deleted by a later layer) is simply not written.
    pub leaves: Vec<Leaf>,
}

impl Tree {
    /// An empty tree whose root directory has mode 0755, owned by 0:0.
    pub fn new() -> Self {
        Tree {
            root: Directory {
                meta: Metadata {
                    mode: 0o755,
                    ..Metadata::default()
                },
                entries: BTreeMap::new(),
            },
            leaves: Vec::new(),
        }
    }

    /// Adds a leaf to the inode table and returns its id (no directory entry is made).
    pub fn push_leaf(&mut self, leaf: Leaf) -> LeafId {
        self.leaves.push(leaf);
        LeafId(self.leaves.len() - 1)
    }

    /// The leaf with this id.
    ///
    /// # Panics
    /// If `id` was not returned by [`Tree::push_leaf`] on this tree.
    pub fn leaf(&self, id: LeafId) -> &Leaf {
        &self.leaves[id.0]
    }
}

/// Contents held in memory, for tests and small trees.
#[derive(Debug, Default, Clone)]
pub struct MemoryContent {
    blobs: BTreeMap<[u8; 32], Vec<u8>>,
}

impl MemoryContent {
    /// Stores `data` and returns its [`Content`].
    pub fn insert(&mut self, data: Vec<u8>) -> Content {
        let sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&data).into();
        let content = Content::hashed(data.len() as u64, sha256);
        self.blobs.insert(sha256, data);
        content
    }
}

impl MemoryContent {
    fn blob(&self, content: &Content) -> std::io::Result<&[u8]> {
        match content.sha256().and_then(|d| self.blobs.get(d)) {
            Some(b) => Ok(b.as_slice()),
            None => Err(crate::content::not_stored(content, "in memory")),
        }
    }
}

impl ContentSource for MemoryContent {
    fn open(&self, content: &Content) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.blob(content)?))
    }

    fn read_at(&self, content: &Content, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let blob = self.blob(content)?;
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| blob.get(start..start.checked_add(buf.len())?));
        let Some(range) = range else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "range past the end of the content",
            ));
        };
        buf.copy_from_slice(range);
        Ok(())
    }
}

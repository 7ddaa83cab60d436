//! EROFS image writer: an ordered [`Tree`] to an uncompressed EROFS image, byte-identical
//! for the same tree and [`Options`].
//!
//! Two passes from one plan (STYLE 10): `layout` assigns every nid, block and size without
//! reading content; `writer` emits the image front to back from that plan, streaming file
//! contents from the [`ContentSource`] (nothing is buffered whole, and the output needs only
//! [`Write`], no seeking). [`format`](mod@format) declares the on-disk records; [`dump()`] parses an image
//! back into a readable listing (for snapshots and checks).
//!
//! The image: 4096-byte blocks, superblock at byte 1024, the metadata area from block 0
//! (the root inode right after the superblock), then the data blocks. See `layout` for the
//! decisions that shape the bytes (inode numbering, compact vs extended inodes, inline
//! tails, xattr encoding).

use std::io::Write;

use crate::tree::{ContentSource, Tree};

pub mod dump;
pub mod format;
mod layout;
mod writer;

pub use dump::{dump, ReadError};

/// Options that reach the image bytes. Everything else is a function of the tree.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every inode timestamp and the superblock build time (`source_date_epoch`).
    pub epoch: u64,
    /// File-system UUID, derived from content by the caller.
    pub uuid: [u8; 16],
}

/// Where one regular file's content lands in a planned image ([`Planned::file_extents`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileExtent {
    /// The content.
    pub content: crate::tree::Content,
    /// Its bytes in the data area (block-aligned start; all of the content, or all but the tail).
    pub data: std::ops::Range<u64>,
    /// Its inline tail in the metadata area (empty unless the file is tail-packed).
    pub tail: std::ops::Range<u64>,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// Image size in bytes, a multiple of [`BLOCK_SIZE`].
    pub size: u64,
}

/// The EROFS block size this writer uses. Changing it changes every image.
pub const BLOCK_SIZE: u32 = 4096;

/// Errors from writing an image. Paths are the first path naming the inode, lossily decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing the image failed.
    #[error("writing the EROFS image")]
    Io(#[from] std::io::Error),
    /// A name longer than EROFS allows (255 bytes).
    #[error("{path}: name is {len} bytes, EROFS allows at most 255")]
    NameTooLong {
        /// The entry's path.
        path: String,
        /// The name's length.
        len: usize,
    },
    /// A name that is empty, `.`, `..`, or contains `/` or NUL.
    #[error("{path}: invalid directory entry name")]
    InvalidName {
        /// The entry's path.
        path: String,
    },
    /// A directory entry names a leaf that is not in the tree's leaf table.
    #[error("{path}: names leaf {leaf}, which the tree does not have")]
    DanglingLeaf {
        /// The entry's path.
        path: String,
        /// The missing leaf index.
        leaf: usize,
    },
    /// A symlink target that is empty, contains NUL, or is 4096 bytes or longer.
    #[error("{path}: symlink target is empty, contains NUL, or is longer than 4095 bytes")]
    InvalidSymlink {
        /// The symlink's path.
        path: String,
    },
    /// A device number that does not fit the 32-bit on-disk encoding.
    #[error("{path}: device number {rdev:#x} does not fit EROFS's 32-bit rdev")]
    RdevTooLarge {
        /// The device's path.
        path: String,
        /// The device number (glibc `makedev` encoding).
        rdev: u64,
    },
    /// An xattr name without a prefix EROFS can index (`user.`, `trusted.`, `security.`,
    /// `system.posix_acl_access`, `system.posix_acl_default`).
    #[error("{path}: xattr {name:?} has no prefix EROFS can store")]
    UnsupportedXattr {
        /// The inode's path.
        path: String,
        /// The xattr's full name.
        name: String,
    },
    /// An xattr whose name suffix exceeds 255 bytes or whose value exceeds 65535 bytes.
    #[error("{path}: xattr {name:?} is too long (name suffix max 255, value max 65535 bytes)")]
    XattrTooLong {
        /// The inode's path.
        path: String,
        /// The xattr's full name.
        name: String,
    },
    /// The xattrs of one inode exceed what `i_xattr_icount` can describe.
    #[error("{path}: xattrs take more space than one inode can hold")]
    XattrsTooLarge {
        /// The inode's path.
        path: String,
    },
    /// More inodes (or links to one inode) than 32 bits can count.
    #[error("too many inodes or links")]
    TooManyInodes,
    /// The image would exceed 2^32 blocks (or the root nid 16 bits).
    #[error("image too large for EROFS block addressing")]
    ImageTooLarge,
    /// Opening a file's content failed.
    #[error("{path}: opening content")]
    OpenContent {
        /// The file's path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Reading a file's content failed.
    #[error("{path}: reading content")]
    ReadContent {
        /// The file's path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A content stream ended before its declared size.
    #[error("{path}: content ended after {actual} of its declared {expected} bytes")]
    ContentTooShort {
        /// The file's path.
        path: String,
        /// Declared size.
        expected: u64,
        /// Bytes the stream gave.
        actual: u64,
    },
    /// A content stream went on past its declared size.
    #[error("{path}: content is longer than its declared {expected} bytes")]
    ContentTooLong {
        /// The file's path.
        path: String,
        /// Declared size.
        expected: u64,
    },
    /// A file whose last partial block was stored inline (read first, for the metadata
    /// area) streamed different bytes there when its whole blocks were copied: it changed
    /// while the image was written.
    #[error("{path}: content changed while the image was written (its inline tail differs from its stream)")]
    ContentChanged {
        /// The file's path.
        path: String,
    },
    /// The emitted bytes drifted from the layout (a bug in this module).
    #[error("internal error at {path}: expected offset {expected}, writer at {at}")]
    Internal {
        /// Where.
        path: String,
        /// Planned offset.
        expected: u64,
        /// Actual offset.
        at: u64,
    },
}

/// Writes `tree` as an uncompressed EROFS image to `out`, streaming file contents from
/// `content`. Leaves no entry names are not written.
pub fn write(
    tree: &Tree,
    options: &Options,
    content: &dyn ContentSource,
    out: &mut dyn Write,
) -> Result<ImageInfo, Error> {
    plan(tree, options)?.emit(content, out)
}

/// Lays `tree` out without writing anything: the image's size is known before its first
/// byte is emitted (for progress, and for whoever must size the output first).
pub fn plan<'t>(tree: &'t Tree, options: &Options) -> Result<Planned<'t>, Error> {
    Ok(Planned {
        layout: layout::plan(tree, options)?,
    })
}

/// An image laid out by [`plan`], ready to emit.
pub struct Planned<'t> {
    layout: layout::Layout<'t>,
}

impl std::fmt::Debug for Planned<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned")
            .field("size", &self.layout.size)
            .finish_non_exhaustive()
    }
}

impl Planned<'_> {
    /// The image's size in bytes.
    pub fn size(&self) -> u64 {
        self.layout.size
    }

    /// Where each regular file's bytes will be in the image, in inode order: a content's bytes
    /// are `image[data] ‖ image[tail]` (the tail is the inline last partial block, which sits
    /// in the metadata area, before the data). Hard links appear once.
    pub fn file_extents(&self) -> Vec<FileExtent> {
        writer::file_extents(&self.layout)
    }

    /// Writes the image to `out`, streaming file contents from `content`.
    pub fn emit(
        &self,
        content: &dyn ContentSource,
        out: &mut dyn Write,
    ) -> Result<ImageInfo, Error> {
        writer::emit(&self.layout, content, out)?;
        Ok(ImageInfo {
            size: self.layout.size,
        })
    }
}

#[cfg(test)]
mod tests;

//! EROFS image writer (placeholder: interface fixed, implementation in progress).

use std::io::Write;

use crate::tree::{ContentSource, Tree};

/// Options that reach the image bytes. Everything else is a function of the tree.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every inode timestamp and the superblock build time (`source_date_epoch`).
    pub epoch: u64,
    /// File-system UUID, derived from content by the caller.
    pub uuid: [u8; 16],
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// Image size in bytes, a multiple of [`BLOCK_SIZE`].
    pub size: u64,
}

/// The EROFS block size this writer uses. Changing it changes every image.
pub const BLOCK_SIZE: u32 = 4096;

/// Errors from writing an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing the image failed.
    #[error("writing the EROFS image")]
    Io(#[from] std::io::Error),
}

/// Writes `tree` as an uncompressed EROFS image to `out`, streaming file contents from
/// `content`.
pub fn write(
    tree: &Tree,
    options: &Options,
    content: &dyn ContentSource,
    out: &mut dyn Write,
) -> Result<ImageInfo, Error> {
    let _ = (tree, options, content, out);
    unimplemented!("EROFS writer")
}

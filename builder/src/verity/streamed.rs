//! The hash area built as the level-0 digests arrive, each hash block written to its place
//! once it is complete: memory is a few blocks per level, whatever the data size.
//!
//! Level `i + 1` hashes the blocks of level `i` in order, so every level can be completed
//! from the one below while the data is still being hashed; only the root waits for the end.
//! Blocks go out with positioned writes at their offsets in the area ([`Layout::level_range`]:
//! the superblock block, then the levels from the top down), gathered [`FLUSH`] bytes at a
//! time.

use std::io;

use super::{Error, Layout, Params, Salted, Superblock, DIGEST_SIZE, SUPERBLOCK_SIZE};

/// Bytes of whole hash blocks a level gathers before they are written (sixteen 4 KiB blocks:
/// one write, and one sixteen-lane hashing call for the level above).
const FLUSH: usize = 64 << 10;

/// Where a streamed hash area goes: positioned writes, offsets from the area's start.
pub trait WriteAt {
    /// Writes all of `buf` at byte `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
}

impl WriteAt for fs_err::File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self.file(), buf, offset)
    }
}

/// A hash tree's root and geometry: what the kernel's table and the record need, without the
/// area (which [`TreeWriter`] leaves in its output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRoot {
    /// The root hash (what the kernel command line pins).
    pub root_hash: [u8; DIGEST_SIZE],
    /// Number of data blocks covered.
    pub data_blocks: u64,
    /// Number of hash blocks in the tree (without the superblock block).
    pub hash_blocks: u64,
    /// The geometry the tree was built with.
    pub layout: Layout,
    /// The salt the tree was built with.
    pub salt: Vec<u8>,
}

/// One level being written: its whole blocks not yet written, and a partial one after them.
#[derive(Debug, Default)]
struct Level {
    pending: Vec<u8>,
    /// Blocks of this level written so far.
    written: u64,
}

/// Builds a hash area from the level-0 digests (`sha256(salt ‖ block)` of each data block, in
/// order, in pieces of any size: [`TreeWriter::push`]) and writes it to `out` as it goes;
/// [`TreeWriter::finish`] writes the last blocks and the superblock. The bytes written are
/// those of [`super::from_level0`]'s area.
pub struct TreeWriter<W: WriteAt> {
    layout: Layout,
    params: Params,
    salted: Salted,
    out: W,
    /// Level 0 first.
    levels: Vec<Level>,
    /// Level-0 digests taken.
    digests: u64,
    /// The top level's block once written (its digest is the root), or, with a single data
    /// block and no levels, that block's digest.
    top: Vec<u8>,
}

impl<W: WriteAt> std::fmt::Debug for TreeWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeWriter")
            .field("layout", &self.layout)
            .field("digests", &self.digests)
            .finish_non_exhaustive()
    }
}

impl<W: WriteAt> TreeWriter<W> {
    /// A tree over `data_size` bytes of data (checked as [`Layout::new`] does), written to
    /// `out`.
    pub fn new(params: &Params, data_size: u64, out: W) -> Result<Self, Error> {
        let layout = Layout::new(params, data_size)?;
        let levels = (0..layout.levels()).map(|_| Level::default()).collect();
        Ok(TreeWriter {
            salted: Salted::new(&params.salt),
            params: params.clone(),
            layout,
            out,
            levels,
            digests: 0,
            top: Vec::new(),
        })
    }

    /// Takes the next level-0 digests (whole digests, any number of them).
    pub fn push(&mut self, digests: &[u8]) -> Result<(), Error> {
        let data_size = self.data_size();
        let count = (digests.len() / DIGEST_SIZE) as u64;
        if !digests.len().is_multiple_of(DIGEST_SIZE)
            || self.digests + count > self.layout.data_blocks
        {
            return Err(Error::Overrun { data_size });
        }
        self.digests += count;
        if self.levels.is_empty() {
            // One data block, no tree: its digest is the root.
            self.top.extend_from_slice(digests);
            return Ok(());
        }
        self.feed(0, digests)
    }

    /// Writes the levels' last blocks (zero-padded) and the superblock, and returns the root.
    /// Fewer level-0 digests than data blocks is [`Error::Truncated`].
    pub fn finish(mut self) -> Result<(TreeRoot, W), Error> {
        let dbs = u64::from(self.layout.data_block_size.get());
        if self.digests != self.layout.data_blocks {
            return Err(Error::Truncated {
                offset: self.digests * dbs,
                data_size: self.data_size(),
            });
        }
        let hbs = self.layout.hash_block_size.bytes();
        for i in 0..self.levels.len() {
            let mut rest = std::mem::take(&mut self.levels[i].pending);
            rest.resize(rest.len().next_multiple_of(hbs), 0);
            if !rest.is_empty() {
                self.emit(i, &rest)?;
            }
            // Every level's block count follows from the data size, as the layout has it.
            debug_assert_eq!(self.levels[i].written, self.layout.level_blocks[i]);
        }
        let root_hash = if self.levels.is_empty() {
            let mut root = [0u8; DIGEST_SIZE];
            root.copy_from_slice(&self.top);
            root
        } else {
            self.salted.digest(&self.top)
        };
        let sb = Superblock {
            hash_type: super::superblock::HASH_TYPE,
            uuid: self.params.uuid,
            algorithm: super::superblock::ALGORITHM.to_owned(),
            data_block_size: self.layout.data_block_size.get(),
            hash_block_size: self.layout.hash_block_size.get(),
            data_blocks: self.layout.data_blocks,
            salt: self.params.salt.clone(),
        }
        .to_bytes()?;
        let mut first = vec![0u8; hbs];
        first[..SUPERBLOCK_SIZE].copy_from_slice(&sb);
        self.write(&first, 0)?;
        let root = TreeRoot {
            root_hash,
            data_blocks: self.layout.data_blocks,
            hash_blocks: self.layout.hash_blocks(),
            salt: self.params.salt,
            layout: self.layout,
        };
        Ok((root, self.out))
    }

    fn data_size(&self) -> u64 {
        self.layout.data_blocks * u64::from(self.layout.data_block_size.get())
    }

    /// Appends `bytes` to level `i`; writes (and hashes into level `i + 1`) its whole blocks
    /// once [`FLUSH`] bytes of them are gathered. Large inputs go through without a copy.
    fn feed(&mut self, i: usize, mut bytes: &[u8]) -> Result<(), Error> {
        let hbs = self.layout.hash_block_size.bytes();
        if self.levels[i].pending.is_empty() && bytes.len() >= FLUSH {
            let whole = bytes.len() / hbs * hbs;
            self.emit(i, &bytes[..whole])?;
            bytes = &bytes[whole..];
        }
        self.levels[i].pending.extend_from_slice(bytes);
        if self.levels[i].pending.len() >= FLUSH {
            let mut pending = std::mem::take(&mut self.levels[i].pending);
            let whole = pending.len() / hbs * hbs;
            self.emit(i, &pending[..whole])?;
            pending.drain(..whole);
            self.levels[i].pending = pending;
        }
        Ok(())
    }

    /// Writes whole blocks of level `i` at its next place and hashes them into level `i + 1`
    /// (or keeps the top level's block for the root).
    fn emit(&mut self, i: usize, blocks: &[u8]) -> Result<(), Error> {
        let hbs = self.layout.hash_block_size.bytes();
        let count = (blocks.len() / hbs) as u64;
        let level = &mut self.levels[i];
        if level.written + count > self.layout.level_blocks[i] {
            return Err(Error::Overrun {
                data_size: self.data_size(),
            });
        }
        let at = self.layout.level_range(i).start as u64 + level.written * hbs as u64;
        level.written += count;
        self.write(blocks, at)?;
        if i + 1 == self.levels.len() {
            self.top = blocks.to_vec();
            return Ok(());
        }
        let mut digests = vec![0u8; count as usize * DIGEST_SIZE];
        self.salted.digest_blocks(blocks, hbs, &mut digests);
        self.feed(i + 1, &digests)
    }

    fn write(&self, bytes: &[u8], offset: u64) -> Result<(), Error> {
        self.out
            .write_all_at(bytes, offset)
            .map_err(|source| Error::Write { offset, source })
    }
}

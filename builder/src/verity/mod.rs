//! dm-verity hash tree in the veritysetup on-disk format (format version 1, SHA-256).
//!
//! [`build_at`] reads the data once (or [`tee`] hashes it as it is written and
//! [`from_level0`] finishes the tree) and returns a [`HashTree`]: the root hash and the *hash
//! area*, the bytes veritysetup would write to the hash device. [`TreeWriter`] builds the same
//! area as the level-0 digests arrive and writes it out as it goes (an image build's memory
//! does not grow with the image), returning a [`TreeRoot`]:
//!
//! ```text
//! hash offset ─▶ ┌──────────────────────────┐
//!                │ superblock (512 B), zero │  one hash block
//!                │ padded to a hash block   │
//! hash_start ──▶ ├──────────────────────────┤
//!                │ top level (1 block)      │  levels from the root down:
//!                │ ...                      │  level i+1 hashes the blocks of level i,
//!                │ level 0                  │  level 0 hashes the data blocks
//!                └──────────────────────────┘
//! ```
//!
//! Every digest is `sha256(salt ‖ block)`. A hash block holds `hash_block_size / 32` digests
//! (a power of two because block sizes are), and the last block of a level is zero-padded.
//! With a single data block there are no levels and the root is that block's digest.
//!
//! The area is position independent as long as it starts at a multiple of the hash block
//! size: veritysetup places the tree at `ceil((hash_offset + 512) / hash_block_size)` blocks
//! (cryptsetup `VERITY_hash_offset_block`), which is `hash_offset / hash_block_size + 1` then.
//! [`HashTree::dm_table`] gives the kernel's table line for a given offset.
//!
//! Data sizes must be a non-zero multiple of the data block size: veritysetup silently drops a
//! partial tail block (leaving it unverified) and refuses empty devices, so both are errors here;
//! padding is the caller's decision.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

mod dump;
mod streamed;
mod superblock;

pub use dump::dump;
pub use streamed::{TreeRoot, TreeWriter, WriteAt};
pub use superblock::{Superblock, MAX_SALT_SIZE, SUPERBLOCK_SIZE};

/// Size of one digest (SHA-256) in bytes.
pub const DIGEST_SIZE: usize = 32;

/// Parameters that reach the hash area bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Salt, prepended to every hashed block (format version 1). At most 256 bytes.
    pub salt: Vec<u8>,
    /// UUID written into the verity superblock.
    pub uuid: [u8; 16],
    /// Data block size in bytes (checked by [`BlockSize`]).
    pub data_block_size: u32,
    /// Hash block size in bytes (checked by [`BlockSize`]).
    pub hash_block_size: u32,
}

impl Params {
    /// Parameters with veritysetup's default block sizes (4096 bytes for data and hashes).
    pub fn new(salt: Vec<u8>, uuid: [u8; 16]) -> Self {
        Params {
            salt,
            uuid,
            data_block_size: BlockSize::DEFAULT.get(),
            hash_block_size: BlockSize::DEFAULT.get(),
        }
    }
}

/// A dm-verity block size: a power of two from 512 to 65536 bytes (the kernel's bounds;
/// it also refuses data blocks larger than the page size when activating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockSize(u32);

impl BlockSize {
    /// The smallest block size (one sector).
    pub const MIN: u32 = 512;
    /// The largest block size.
    pub const MAX: u32 = 65536;
    /// veritysetup's default, and the EROFS block size.
    pub const DEFAULT: BlockSize = BlockSize(4096);

    /// Checks `bytes`; `None` unless it is a power of two in `MIN..=MAX`.
    pub const fn new(bytes: u32) -> Option<Self> {
        if bytes.is_power_of_two() && bytes >= Self::MIN && bytes <= Self::MAX {
            Some(BlockSize(bytes))
        } else {
            None
        }
    }

    /// The size in bytes.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The size in bytes as a `usize` (at most 65536, so this never truncates).
    fn bytes(self) -> usize {
        self.0 as usize
    }

    fn parse(field: &'static str, value: u32) -> Result<Self, Error> {
        Self::new(value).ok_or(Error::InvalidBlockSize { field, value })
    }
}

impl TryFrom<u32> for BlockSize {
    type Error = Error;

    fn try_from(value: u32) -> Result<Self, Error> {
        Self::parse("block_size", value)
    }
}

/// The geometry of a hash tree: [`Params`] checked against a data size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    data_block_size: BlockSize,
    hash_block_size: BlockSize,
    data_blocks: u64,
    /// Hash blocks per level, level 0 (the hashes of the data blocks) first.
    level_blocks: Vec<u64>,
}

impl Layout {
    /// Checks `params` (block sizes, salt length) and `data_size` (a non-zero multiple of the
    /// data block size) and computes the level sizes.
    pub fn new(params: &Params, data_size: u64) -> Result<Self, Error> {
        let data_block_size = BlockSize::parse("data_block_size", params.data_block_size)?;
        let hash_block_size = BlockSize::parse("hash_block_size", params.hash_block_size)?;
        if params.salt.len() > MAX_SALT_SIZE {
            return Err(Error::SaltTooLong {
                len: params.salt.len(),
            });
        }
        let dbs = u64::from(data_block_size.get());
        if data_size == 0 {
            return Err(Error::EmptyData);
        }
        if !data_size.is_multiple_of(dbs) {
            return Err(Error::UnalignedDataSize {
                data_size,
                data_block_size: data_block_size.get(),
            });
        }
        let data_blocks = data_size / dbs;
        // Block sizes are powers of two ≥ 512, so this is a power of two ≥ 16, as veritysetup
        // and the kernel require (they round down to one).
        let per_block = u64::from(hash_block_size.get()) / DIGEST_SIZE as u64;
        let mut level_blocks = Vec::new();
        let mut n = data_blocks;
        while n > 1 {
            n = n.div_ceil(per_block);
            level_blocks.push(n);
        }
        let layout = Layout {
            data_block_size,
            hash_block_size,
            data_blocks,
            level_blocks,
        };
        // Offsets in the area are `usize` (`level_range`), and `from_level0` holds it whole.
        layout.area_len().ok_or(Error::TooLarge { data_size })?;
        Ok(layout)
    }

    /// The data block size.
    pub fn data_block_size(&self) -> BlockSize {
        self.data_block_size
    }

    /// The hash block size.
    pub fn hash_block_size(&self) -> BlockSize {
        self.hash_block_size
    }

    /// Number of data blocks covered.
    pub fn data_blocks(&self) -> u64 {
        self.data_blocks
    }

    /// Number of tree levels (0 for a single data block).
    pub fn levels(&self) -> usize {
        self.level_blocks.len()
    }

    /// Hash blocks in the tree, without the superblock block.
    pub fn hash_blocks(&self) -> u64 {
        self.level_blocks.iter().sum()
    }

    /// Size of the hash area in bytes: the superblock block plus the tree.
    pub fn area_size(&self) -> u64 {
        (self.hash_blocks() + 1) * u64::from(self.hash_block_size.get())
    }

    /// Where the tree's root level starts on the hash device, in hash blocks, when the area
    /// is written at byte `hash_offset` (the kernel table's `<hash_start_block>`).
    pub fn hash_start_block(&self, hash_offset: u64) -> Result<u64, Error> {
        let hbs = u64::from(self.hash_block_size.get());
        if !hash_offset.is_multiple_of(hbs) {
            return Err(Error::UnalignedHashOffset {
                hash_offset,
                hash_block_size: hbs as u32,
            });
        }
        // The superblock (512 bytes ≤ one hash block) takes exactly one block.
        Ok(hash_offset / hbs + 1)
    }

    /// The area size as a `usize`, if it fits.
    fn area_len(&self) -> Option<usize> {
        let blocks = self
            .level_blocks
            .iter()
            .try_fold(1u64, |acc, &n| acc.checked_add(n))?;
        let bytes = blocks.checked_mul(u64::from(self.hash_block_size.get()))?;
        usize::try_from(bytes).ok()
    }

    /// Byte range of level `i` inside the area (top level first, after the superblock block).
    /// Only called after `area_len` succeeded, so nothing overflows.
    fn level_range(&self, i: usize) -> std::ops::Range<usize> {
        let hbs = self.hash_block_size.bytes();
        let above: u64 = self.level_blocks[i + 1..].iter().sum();
        let start = (1 + above as usize) * hbs;
        start..start + self.level_blocks[i] as usize * hbs
    }
}

/// A computed hash area, in memory: the tree's root and the veritysetup superblock block
/// followed by the tree levels.
#[derive(Debug, Clone)]
pub struct HashTree {
    /// The root hash, the geometry and the salt.
    pub root: TreeRoot,
    /// Bytes to write at the hash offset: superblock block, then the levels.
    pub area: Vec<u8>,
}

impl TreeRoot {
    /// The root hash as lowercase hex.
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }

    /// The kernel's dm-verity table line (Documentation/admin-guide/device-mapper/verity.rst)
    /// for this tree written at byte `hash_offset` of `hash_dev`:
    ///
    /// `0 <data sectors> verity 1 <data_dev> <hash_dev> <dbs> <hbs> <data blocks>
    /// <hash_start_block> sha256 <root hex> <salt hex or -> [<#words> <options…>]`
    ///
    /// `options` are optional-parameter words (`ignore_zero_blocks`, `panic_on_corruption`,
    /// or `use_fec_from_device /dev/x` as one string); the count is the number of words.
    pub fn dm_table(
        &self,
        data_dev: &str,
        hash_dev: &str,
        hash_offset: u64,
        options: &[&str],
    ) -> Result<String, Error> {
        let l = &self.layout;
        let hash_start = l.hash_start_block(hash_offset)?;
        let sectors = l.data_blocks * u64::from(l.data_block_size.get() / 512);
        let salt = if self.salt.is_empty() {
            "-".to_owned()
        } else {
            hex::encode(&self.salt)
        };
        let mut line = format!(
            "0 {sectors} verity 1 {data_dev} {hash_dev} {} {} {} {hash_start} sha256 {} {salt}",
            l.data_block_size.get(),
            l.hash_block_size.get(),
            l.data_blocks,
            self.root_hash_hex(),
        );
        let words: Vec<&str> = options.iter().flat_map(|o| o.split_whitespace()).collect();
        if !words.is_empty() {
            // Writing to a String cannot fail.
            let _ = write!(line, " {} {}", words.len(), words.join(" "));
        }
        Ok(line)
    }
}

impl HashTree {
    /// The superblock fields written at the start of the area.
    pub fn superblock(&self) -> Result<Superblock, Error> {
        Superblock::parse(&self.area)
    }
}

/// Errors from building a hash tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the data failed.
    #[error("reading the data to hash at byte {offset}")]
    Read {
        /// Byte offset in the data where the read started.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the hash area failed.
    #[error("writing the dm-verity hash area at byte {offset} of it")]
    Write {
        /// Byte offset in the area.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// More data (level-0 digests) than the declared size.
    #[error("more data than its declared size of {data_size} bytes")]
    Overrun {
        /// Bytes expected.
        data_size: u64,
    },
    /// The data ended before `data_size` bytes.
    #[error("the data ends at byte {offset}, before its declared size of {data_size} bytes")]
    Truncated {
        /// Bytes actually read.
        offset: u64,
        /// Bytes expected.
        data_size: u64,
    },
    /// A block size is not a power of two in 512..=65536.
    #[error("{field} = {value} is not a power of two from 512 to 65536")]
    InvalidBlockSize {
        /// Which parameter.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// The salt is longer than the superblock can hold.
    #[error("the salt is {len} bytes, more than the 256 the verity superblock holds")]
    SaltTooLong {
        /// Salt length in bytes.
        len: usize,
    },
    /// There is no data to protect.
    #[error("the data is empty; dm-verity needs at least one data block")]
    EmptyData,
    /// The data size is not a multiple of the data block size.
    #[error(
        "the data size {data_size} is not a multiple of the data block size {data_block_size}"
    )]
    UnalignedDataSize {
        /// Data size in bytes.
        data_size: u64,
        /// Data block size in bytes.
        data_block_size: u32,
    },
    /// The hash area's offset is not a multiple of the hash block size.
    #[error(
        "the hash offset {hash_offset} is not a multiple of the hash block size {hash_block_size}"
    )]
    UnalignedHashOffset {
        /// Offset in bytes.
        hash_offset: u64,
        /// Hash block size in bytes.
        hash_block_size: u32,
    },
    /// The tree would not fit in memory (it is 1/128 of the data with 4 KiB hash blocks).
    #[error("the hash tree for {data_size} bytes of data does not fit in memory")]
    TooLarge {
        /// Data size in bytes.
        data_size: u64,
    },
    /// A hash area is shorter than its superblock says.
    #[error("the hash area is {len} bytes; its superblock describes {expected}")]
    AreaTooShort {
        /// Bytes present.
        len: u64,
        /// Bytes the superblock's geometry needs.
        expected: u64,
    },
    /// A superblock field is out of range.
    #[error("verity superblock field {field} is invalid ({value:#x})")]
    Superblock {
        /// The field (or `length` when the input is shorter than 512 bytes).
        field: &'static str,
        /// The offending value.
        value: u64,
    },
}

/// Builds the hash tree over the first `data_size` bytes of `data`, a file or bytes in memory
/// (bytes after them are not read). Every core reads its own pieces ([`PIECE_BYTES`]) with
/// positioned reads and hashes them while they are in its cache, so the copy out of the page
/// cache runs in parallel too. Each byte is read once and not kept: only the tree (32 bytes per data block,
/// then the area) is held.
///
/// `data_size` must be a non-zero multiple of the data block size; data that ends before it
/// is [`Error::Truncated`], a failed read [`Error::Read`], both with the byte offset. The
/// returned area is what veritysetup writes at any hash offset that is a multiple of the hash
/// block size (appended to a 4096-aligned image with 4096-byte hash blocks, always);
/// [`HashTree::dm_table`] refuses other offsets.
pub fn build_at<R: ReadAt + ?Sized>(
    data: &R,
    data_size: u64,
    params: &Params,
) -> Result<HashTree, Error> {
    let layout = Layout::new(params, data_size)?;
    let salted = Salted::new(&params.salt);
    let dbs = layout.data_block_size.bytes();
    // `Layout::new` checked that the area (larger than level 0) fits in a usize.
    let level0_len = layout.data_blocks as usize * DIGEST_SIZE;
    let mut level0 = Vec::new();
    level0
        .try_reserve_exact(level0_len)
        .map_err(|_| Error::TooLarge { data_size })?;
    level0.resize(level0_len, 0);
    // PIECE_BYTES is a multiple of every block size (powers of two up to 64 KiB).
    let digests_per_piece = PIECE_BYTES / dbs * DIGEST_SIZE;
    level0
        .par_chunks_mut(digests_per_piece)
        .enumerate()
        .try_for_each_init(Vec::new, |buf: &mut Vec<u8>, (i, out)| {
            let len = out.len() / DIGEST_SIZE * dbs;
            buf.resize(len, 0);
            let offset = i as u64 * PIECE_BYTES as u64;
            fill_at(data, &mut buf[..len], offset, data_size)?;
            salted.digest_blocks(&buf[..len], dbs, out);
            Ok(())
        })?;
    from_level0(params, data_size, &level0)
}

/// Data read at any offset, from several threads at once: a file (positioned reads, which
/// leave the file's position alone) or bytes in memory.
pub trait ReadAt: Sync {
    /// Reads into `buf` from byte `offset`; returns how many bytes were read, 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for fs_err::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self.file(), buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).map_or(self.len(), |o| o.min(self.len()));
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Bytes moved per step: what a worker of [`build_at`] reads and hashes, what [`tee`] writes
/// and hands to its hashing thread; the layer reader's chunks, the pin hash's reads and the
/// dm-verity area's writes use it too. Small enough to stay in the core's cache between being read or filled and being written
/// or hashed. Measured on this project's 2-core machine (Linux 6.18, ext4, a 1 GiB file in the
/// page cache): reading it into a reused 128 KiB buffer took 0.14-0.16 s of system time, into
/// a 1 MiB one 0.6-0.7 s; writing it 4 MiB at a time took 1.6-3.8 s, 128 KiB at a time
/// 0.5 s. Larger pieces only cost cache misses.
pub const PIECE_BYTES: usize = 128 << 10;

/// Fills `buf` from byte `offset` of `data`.
fn fill_at<R: ReadAt + ?Sized>(
    data: &R,
    buf: &mut [u8],
    offset: u64,
    data_size: u64,
) -> Result<(), Error> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset + done as u64;
        match data.read_at(&mut buf[done..], at) {
            Ok(0) => {
                return Err(Error::Truncated {
                    offset: at,
                    data_size,
                })
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(Error::Read { offset: at, source }),
        }
    }
    Ok(())
}

/// Builds the hash area from the data blocks' digests (`sha256(salt ‖ block)` for each data
/// block of `data_size` bytes, in order: what [`tee`] computes while the data is
/// written). The result is the same as [`build_at`] over the data.
pub fn from_level0(params: &Params, data_size: u64, level0: &[u8]) -> Result<HashTree, Error> {
    let layout = Layout::new(params, data_size)?;
    if level0.len() as u64 != layout.data_blocks * DIGEST_SIZE as u64 {
        return Err(Error::Truncated {
            offset: level0.len() as u64 / DIGEST_SIZE as u64
                * u64::from(layout.data_block_size.get()),
            data_size,
        });
    }
    // `Layout::new` checked that the area fits in a usize.
    let area_len = layout.area_len().ok_or(Error::TooLarge { data_size })?;
    let mut area = Vec::new();
    area.try_reserve_exact(area_len)
        .map_err(|_| Error::TooLarge { data_size })?;
    area.resize(area_len, 0);
    let mut writer = TreeWriter::new(params, data_size, Memory(std::cell::RefCell::new(area)))?;
    writer.push(level0)?;
    let (root, Memory(area)) = writer.finish()?;
    Ok(HashTree {
        root,
        area: area.into_inner(),
    })
}

/// An area in memory, laid out in advance ([`from_level0`]).
struct Memory(std::cell::RefCell<Vec<u8>>);

impl WriteAt for Memory {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut area = self.0.borrow_mut();
        let at = usize::try_from(offset)
            .ok()
            .filter(|at| {
                at.checked_add(buf.len())
                    .is_some_and(|end| end <= area.len())
            })
            .ok_or_else(|| io::Error::other("a hash block past the end of the area"))?;
        area[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}

/// What [`tee`] computed over the bytes written through it.
#[derive(Debug)]
pub struct Teed {
    /// Plain sha256 of every byte so far; keep updating it to digest a whole file.
    pub sha256: sha256x2::Stream,
    /// The sha256 of each [`Also`] given to [`tee`], in the same order.
    pub also: Vec<[u8; DIGEST_SIZE]>,
    /// Bytes written.
    pub size: u64,
}

/// A byte stream within what [`tee`] is given to write: `bytes[first] ‖ bytes[then]`, whose
/// sha256 it also computes (a data disk's pinned weights: their whole blocks in the data
/// area, then their tail, stored inline earlier in the image). `first` is hashed in the same
/// pass as the whole output's sha256, two lanes at a time where the CPU allows
/// ([`sha256x2::Sha256x2::update_both`]); `then` is held in memory until the end (a tail is
/// under a block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Also {
    /// The main range (byte offsets in the output).
    pub first: std::ops::Range<u64>,
    /// Hashed after `first`, wherever it is in the output.
    pub then: std::ops::Range<u64>,
}

/// Runs `write` with a writer that passes every byte to `out` in chunks of [`PIECE_BYTES`] and
/// computes, each on a thread of its own, the dm-verity level-0 digests (`data_block_size`,
/// `salt`), handed to `level0` chunk by chunk, in order (a [`TreeWriter`]'s `push`), and the
/// plain sha256 of the bytes (and, on that same thread, the sha256 of each of `also`): the
/// data is hashed as it is written, never read back. Returns `write`'s result and the
/// digests. If `level0` fails, its error is returned; else if `write` fails, its error is, and
/// the digests are dropped.
///
/// Two threads that each wait only for their next chunk, rather than one thread that splits
/// every chunk between rayon's workers: a `rayon::join` per 128 KiB chunk from outside the
/// pool made 8,000 hand-offs per GB, and a quarter of the image stage's samples were the
/// scheduler's.
///
/// `also`'s `first` ranges must not overlap one another (an error of kind `InvalidInput`).
pub fn tee<T, E: From<io::Error>>(
    out: &mut dyn io::Write,
    data_block_size: BlockSize,
    salt: &[u8],
    also: &[Also],
    level0: &mut (dyn FnMut(&[u8]) -> io::Result<()> + Send),
    write: impl FnOnce(&mut dyn io::Write) -> Result<T, E>,
) -> Result<(T, Teed), E> {
    let block = data_block_size.bytes();
    let salted = Salted::new(salt);
    let mut order: Vec<usize> = (0..also.len())
        .filter(|&i| !also[i].first.is_empty())
        .collect();
    order.sort_by_key(|&i| also[i].first.start);
    if order
        .windows(2)
        .any(|w| also[w[0]].first.end > also[w[1]].first.start)
    {
        return Err(E::from(io::Error::new(
            io::ErrorKind::InvalidInput,
            "tee: the extra streams' main ranges overlap",
        )));
    }
    // Up to TEE_QUEUE chunks queued for each hashing thread plus the ones being hashed and the
    // one being filled: about 8 MiB, as the hashing's pace and the writes' vary.
    let (to_whole, whole_chunks) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(TEE_QUEUE);
    let (to_blocks, block_chunks) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(TEE_QUEUE);
    let (recycle, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    let recycle_too = recycle.clone();
    std::thread::scope(|s| {
        let whole = s.spawn(move || {
            let mut h = Wholes::new(also, order);
            for chunk in whole_chunks {
                h.update(&chunk);
                give_back(chunk, &recycle);
            }
            h.finish()
        });
        let blocks = s.spawn(move || -> io::Result<()> {
            let mut digests = Vec::new();
            for chunk in block_chunks {
                digests.resize(chunk.len().div_ceil(block) * DIGEST_SIZE, 0);
                salted.digest_blocks(&chunk, block, &mut digests);
                give_back(chunk, &recycle_too);
                // On an error the chunks stop being taken, and the writer stops too.
                level0(&digests)?;
            }
            Ok(())
        });
        let mut w = TeeWriter {
            out,
            chunk: Vec::with_capacity(PIECE_BYTES),
            to_hashers: Some((to_whole, to_blocks)),
            spare,
        };
        let result = write(&mut w).and_then(|t| w.finish().map(|()| t).map_err(E::from));
        // Ends the hashers' loops (also after an error).
        drop(w);
        let (sha256, also, size) = join(whole);
        // A failed `level0` stops the writer with "a hashing thread stopped": its own error
        // says why.
        join(blocks).map_err(E::from)?;
        result.map(|t| (t, Teed { sha256, also, size }))
    })
}

/// [`tee`]'s sequential hashes: the whole output's sha256 and each [`Also`]'s.
struct Wholes<'a> {
    whole: sha256x2::Stream,
    lanes: Option<sha256x2::Sha256x2>,
    also: &'a [Also],
    streams: Vec<sha256x2::Stream>,
    /// Each one's `then` bytes, gathered as they pass.
    thens: Vec<Vec<u8>>,
    /// Indexes of `also` with a non-empty `first`, by its start; `next` is the first not
    /// yet passed.
    order: Vec<usize>,
    next: usize,
    /// Output offset of the next byte.
    at: u64,
}

impl<'a> Wholes<'a> {
    fn new(also: &'a [Also], order: Vec<usize>) -> Self {
        Wholes {
            whole: sha256x2::Stream::new(),
            lanes: sha256x2::Sha256x2::new(b""),
            also,
            streams: vec![sha256x2::Stream::new(); also.len()],
            thens: vec![Vec::new(); also.len()],
            order,
            next: 0,
            at: 0,
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        let start = self.at;
        let end = start + chunk.len() as u64;
        let part = |r: &std::ops::Range<u64>| {
            let (from, to) = (r.start.max(start), r.end.min(end));
            // Both within `start..end`, so the offsets fit in `chunk`.
            (from < to).then(|| &chunk[(from - start) as usize..(to - start) as usize])
        };
        for (a, then) in self.also.iter().zip(&mut self.thens) {
            if let Some(bytes) = part(&a.then) {
                then.extend_from_slice(bytes);
            }
        }
        let mut at = start;
        while at < end {
            let here = at - start;
            let current = self.order.get(self.next).map(|&i| (i, &self.also[i].first));
            match current {
                Some((i, first)) if first.start <= at => {
                    let to = first.end.min(end);
                    let bytes = &chunk[here as usize..(to - start) as usize];
                    let (whole, side) = (&mut self.whole, &mut self.streams[i]);
                    match &self.lanes {
                        Some(lanes) => lanes.update_both(whole, side, bytes),
                        None => {
                            whole.update(bytes);
                            side.update(bytes);
                        }
                    }
                    if to == first.end {
                        self.next += 1;
                    }
                    at = to;
                }
                other => {
                    let to = other.map_or(end, |(_, first)| first.start.min(end));
                    self.whole
                        .update(&chunk[here as usize..(to - start) as usize]);
                    at = to;
                }
            }
        }
        self.at = end;
    }

    fn finish(self) -> (sha256x2::Stream, Vec<[u8; DIGEST_SIZE]>, u64) {
        let also = self
            .streams
            .into_iter()
            .zip(self.thens)
            .map(|(mut s, then)| {
                s.update(&then);
                s.finalize()
            })
            .collect();
        (self.whole, also, self.at)
    }
}

/// Waits for a scoped thread; its panic goes on here.
fn join<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match thread.join() {
        Ok(t) => t,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A chunk a hashing thread of [`tee`] is done with: the writer reuses it once both are.
fn give_back(chunk: Arc<Vec<u8>>, recycle: &std::sync::mpsc::Sender<Vec<u8>>) {
    if let Ok(chunk) = Arc::try_unwrap(chunk) {
        // The writer may be gone already (it only takes spares while writing).
        let _ = recycle.send(chunk);
    }
}

/// Chunks of [`PIECE_BYTES`] queued between [`tee`]'s writer and each of its hashing threads
/// (8 MiB; a chunk in both queues is one buffer). The writer and the two hashing threads share
/// two cores: with 16 chunks the writer often waited on one hasher's full queue while the
/// other's ran dry, and a fifth of the two cores went idle while the image was written; 64
/// made the OCI benchmark's build 0.95x its time (256 did no better).
const TEE_QUEUE: usize = 64;

/// The writer [`tee`] hands out: fills a chunk, writes it to the output, then queues it for
/// both hashing threads and continues with a spare one.
struct TeeWriter<'o> {
    out: &'o mut dyn io::Write,
    chunk: Vec<u8>,
    /// To the whole-file sha256 and to the level-0 digests.
    #[allow(clippy::type_complexity)]
    to_hashers: Option<(
        std::sync::mpsc::SyncSender<Arc<Vec<u8>>>,
        std::sync::mpsc::SyncSender<Arc<Vec<u8>>>,
    )>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl TeeWriter<'_> {
    /// Writes and queues the current chunk.
    fn ship(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.out.write_all(&self.chunk)?;
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(PIECE_BYTES));
        let full = Arc::new(std::mem::replace(&mut self.chunk, next));
        self.chunk.clear();
        let gone = || io::Error::other("a dm-verity hashing thread stopped");
        let (whole, blocks) = self.to_hashers.as_ref().ok_or_else(gone)?;
        whole.send(Arc::clone(&full)).map_err(|_| gone())?;
        blocks.send(full).map_err(|_| gone())
    }

    /// Ships the last (partial) chunk, flushes the output and ends the hashing.
    fn finish(&mut self) -> io::Result<()> {
        self.ship()?;
        self.out.flush()?;
        self.to_hashers = None;
        Ok(())
    }
}

impl io::Write for TeeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = PIECE_BYTES - self.chunk.len();
        let n = room.min(buf.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == PIECE_BYTES {
            self.ship()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks are written whole; the final flush is `finish`'s.
        Ok(())
    }
}

/// Whether sixteen lanes hash 4 KiB blocks faster than two on this CPU, measured once per
/// process (about 3 ms, with the first salt asked for: the salt does not change the
/// speed). Both give the same bytes; which is faster depends on the CPU. Sixteen AVX-512
/// lanes against two lanes with the SHA extensions, per core: 1.9 against 1.35 GB/s on the
/// Intel Xeon of issue 13, 3.4 against 2.6 on an AMD EPYC of family 26 (Zen 5). CPUs that run
/// 512-bit operations as two halves (AMD's family 25) may favour the two lanes; that was not
/// measured. Without the SHA extensions sixteen lanes are always used where the CPU has them.
fn sixteen_is_faster(salt: &[u8]) -> bool {
    /// How long the sixteen lanes run before they are timed (once per process).
    const SIXTEEN_WARM_UP: std::time::Duration = std::time::Duration::from_millis(2);
    static FASTER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FASTER.get_or_init(|| {
        let sixteen = Salted::all_lanes(salt);
        if sixteen.two.is_none() {
            return true;
        }
        let two = Salted {
            sixteen: None,
            ..sixteen.clone()
        };
        const BLOCK: usize = 4096;
        let data: Vec<u8> = (0..64 * BLOCK).map(|i| (i * 31 % 251) as u8).collect();
        let mut out = vec![0u8; 64 * DIGEST_SIZE];
        // The sixteen lanes first run alone for a while: on the AMD EPYC (Zen 5) their first
        // milliseconds are slower. Measured without it (five runs each), sixteen took 91-100 µs
        // for these 64 blocks against two lanes' 88-99 in six builds of six, and the two
        // lanes were chosen; warmed for 2 ms, sixteen took 70-73 µs against 87-90 in ten of
        // ten. The weights build with two lanes forced took 3.94 s against 3.45 s with
        // sixteen (median of 6).
        let warm = std::time::Instant::now();
        while warm.elapsed() < SIXTEEN_WARM_UP {
            sixteen.digest_blocks(&data, BLOCK, &mut out);
        }
        // Then the best of eight runs each, the two interleaved.
        let mut best = [std::time::Duration::MAX; 2];
        for _ in 0..8 {
            for (best, salted) in best.iter_mut().zip([&sixteen, &two]) {
                let start = std::time::Instant::now();
                salted.digest_blocks(&data, BLOCK, &mut out);
                *best = (*best).min(start.elapsed());
            }
        }
        best[0] < best[1]
    })
}

/// `sha256(salt ‖ block)`: sixteen blocks at a time where the CPU has AVX-512
/// ([`sha256x2::Sha256x16`]) and that is the faster way here ([`sixteen_is_faster`]), two at a
/// time where it has the SHA extensions ([`sha256x2::Sha256x2`]) for the blocks left, else one
/// at a time with the salt's state cloned. Every way gives the same bytes.
#[derive(Clone, Debug)]
struct Salted {
    one: Sha256,
    two: Option<sha256x2::Sha256x2>,
    sixteen: Option<sha256x2::Sha256x16>,
}

impl Salted {
    fn new(salt: &[u8]) -> Self {
        let mut salted = Salted::all_lanes(salt);
        if salted.sixteen.is_some() && !sixteen_is_faster(salt) {
            salted.sixteen = None;
        }
        salted
    }

    /// The hasher with every path the CPU has, the sixteen lanes measured faster or not
    /// (tests compare it).
    fn all_lanes(salt: &[u8]) -> Self {
        Salted {
            one: Sha256::new_with_prefix(salt),
            two: sha256x2::Sha256x2::new(salt),
            sixteen: sha256x2::Sha256x16::new(salt),
        }
    }

    /// The same hasher without the many-lane paths (tests compare both).
    #[cfg(test)]
    fn one_lane(salt: &[u8]) -> Self {
        Salted {
            one: Sha256::new_with_prefix(salt),
            two: None,
            sixteen: None,
        }
    }

    /// The same hasher without the sixteen-lane path (tests compare it too).
    #[cfg(test)]
    fn two_lanes(salt: &[u8]) -> Self {
        Salted {
            sixteen: None,
            ..Salted::all_lanes(salt)
        }
    }

    fn digest(&self, block: &[u8]) -> [u8; DIGEST_SIZE] {
        let mut h = self.one.clone();
        h.update(block);
        h.finalize().into()
    }

    /// Digests of each `block`-sized piece of `src` (the last may be shorter) into consecutive
    /// slots of `out`.
    fn digest_blocks(&self, mut src: &[u8], block: usize, mut out: &mut [u8]) {
        if let Some(sixteen) = &self.sixteen {
            let group = sha256x2::Sha256x16::LANES * block;
            let digests = sha256x2::Sha256x16::LANES * DIGEST_SIZE;
            while src.len() >= group && out.len() >= digests {
                let (blocks, rest) = src.split_at(group);
                // The shape is right by construction; were it not, the blocks left go below.
                if sixteen.digest16(blocks, &mut out[..digests]).is_err() {
                    break;
                }
                src = rest;
                out = &mut std::mem::take(&mut out)[digests..];
            }
        }
        let mut pieces = src.chunks(block).zip(out.chunks_mut(DIGEST_SIZE));
        while let Some((a, out_a)) = pieces.next() {
            let Some((b, out_b)) = pieces.next() else {
                out_a.copy_from_slice(&self.digest(a));
                break;
            };
            match self.two.as_ref().map(|two| two.digest_pair(a, b)) {
                Some(Ok([da, db])) => {
                    out_a.copy_from_slice(&da);
                    out_b.copy_from_slice(&db);
                }
                // No SHA extensions, or a short last block: one at a time.
                _ => {
                    out_a.copy_from_slice(&self.digest(a));
                    out_b.copy_from_slice(&self.digest(b));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! dm-verity hash tree (placeholder: interface fixed, implementation in progress).

use std::io::Read;

/// Parameters that reach the hash area bytes.
#[derive(Debug, Clone)]
pub struct Params {
    /// Salt, prepended to every hashed block (format version 1).
    pub salt: Vec<u8>,
    /// UUID written into the verity superblock.
    pub uuid: [u8; 16],
    /// Data block size in bytes.
    pub data_block_size: u32,
    /// Hash block size in bytes.
    pub hash_block_size: u32,
}

/// A computed hash area: the veritysetup superblock block followed by the tree levels.
#[derive(Debug, Clone)]
pub struct HashTree {
    /// The root hash (what the kernel command line pins).
    pub root_hash: [u8; 32],
    /// Number of data blocks covered.
    pub data_blocks: u64,
    /// Number of hash blocks in the tree (without the superblock block).
    pub hash_blocks: u64,
    /// Bytes to write at the hash offset: superblock block, then the levels.
    pub area: Vec<u8>,
}

/// Errors from building a hash tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the data failed.
    #[error("reading the data to hash")]
    Io(#[from] std::io::Error),
}

/// Builds the hash tree over `data_size` bytes read from `data`.
pub fn build(data: &mut dyn Read, data_size: u64, params: &Params) -> Result<HashTree, Error> {
    let _ = (data, data_size, params);
    unimplemented!("verity")
}

impl HashTree {
    /// The dm-verity table line (stub).
    pub fn dm_table(&self, _p: &Params, _d: &str, _h: &str, _off: u64, _o: &[&str]) -> String {
        unimplemented!()
    }
}

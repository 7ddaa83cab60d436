//! The veritysetup on-disk superblock (`struct verity_sb` in cryptsetup's `lib/verity/verity.c`).
//!
//! 512 bytes, little-endian, at the start of the hash area. The kernel never reads it: it
//! exists so `veritysetup open/verify/dump` can find the parameters. Layout (byte offsets):
//!
//! ```text
//!   0  signature     [8]   "verity\0\0"
//!   8  version       u32   1 (superblock format version)
//!  12  hash_type     u32   1 (dm-verity format: salt hashed first)
//!  16  uuid          [16]  raw bytes, in the order of the textual UUID
//!  32  algorithm     [32]  "sha256", NUL-padded
//!  64  data_block_size  u32
//!  68  hash_block_size  u32
//!  72  data_blocks   u64
//!  80  salt_size     u16
//!  82  _pad1         [6]
//!  88  salt          [256]
//! 344  _pad2         [168]
//! ```
//!
//! Changing any constant here changes every image's hash area.

use measurements::reader;

use super::Error;

/// Size of the superblock in bytes.
pub const SUPERBLOCK_SIZE: usize = 512;
/// The superblock signature.
pub(crate) const SIGNATURE: [u8; 8] = *b"verity\0\0";
/// The only superblock version veritysetup writes.
pub(crate) const SUPERBLOCK_VERSION: u32 = 1;
/// dm-verity format version 1: the salt is hashed before each block (version 0 appends it).
pub(crate) const HASH_TYPE: u32 = 1;
/// The algorithm name this crate writes.
pub(crate) const ALGORITHM: &str = "sha256";
/// Largest salt the superblock can hold.
pub const MAX_SALT_SIZE: usize = 256;

const OFF_VERSION: usize = 8;
const OFF_HASH_TYPE: usize = 12;
const OFF_UUID: usize = 16;
const OFF_ALGORITHM: usize = 32;
const ALGORITHM_LEN: usize = 32;
const OFF_DATA_BLOCK_SIZE: usize = 64;
const OFF_HASH_BLOCK_SIZE: usize = 68;
const OFF_DATA_BLOCKS: usize = 72;
const OFF_SALT_SIZE: usize = 80;
const OFF_SALT: usize = 88;

/// The decoded fields of a veritysetup superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// dm-verity format version (`hash_type`); this crate writes 1.
    pub hash_type: u32,
    /// UUID, raw bytes.
    pub uuid: [u8; 16],
    /// Hash algorithm name, e.g. `sha256`.
    pub algorithm: String,
    /// Data block size in bytes.
    pub data_block_size: u32,
    /// Hash block size in bytes.
    pub hash_block_size: u32,
    /// Number of data blocks the tree covers.
    pub data_blocks: u64,
    /// The salt (at most [`MAX_SALT_SIZE`] bytes).
    pub salt: Vec<u8>,
}

impl Superblock {
    /// Encodes the superblock. Fails only if the salt or the algorithm name do not fit.
    pub fn to_bytes(&self) -> Result<[u8; SUPERBLOCK_SIZE], Error> {
        let salt_size = u16::try_from(self.salt.len())
            .ok()
            .filter(|&n| usize::from(n) <= MAX_SALT_SIZE)
            .ok_or(Error::SaltTooLong {
                len: self.salt.len(),
            })?;
        let algorithm = self.algorithm.as_bytes();
        if algorithm.len() >= ALGORITHM_LEN {
            return Err(Error::Superblock {
                field: "algorithm",
                value: algorithm.len() as u64,
            });
        }
        let mut b = [0u8; SUPERBLOCK_SIZE];
        b[..8].copy_from_slice(&SIGNATURE);
        put(&mut b, OFF_VERSION, &SUPERBLOCK_VERSION.to_le_bytes());
        put(&mut b, OFF_HASH_TYPE, &self.hash_type.to_le_bytes());
        put(&mut b, OFF_UUID, &self.uuid);
        put(&mut b, OFF_ALGORITHM, algorithm);
        put(
            &mut b,
            OFF_DATA_BLOCK_SIZE,
            &self.data_block_size.to_le_bytes(),
        );
        put(
            &mut b,
            OFF_HASH_BLOCK_SIZE,
            &self.hash_block_size.to_le_bytes(),
        );
        put(&mut b, OFF_DATA_BLOCKS, &self.data_blocks.to_le_bytes());
        put(&mut b, OFF_SALT_SIZE, &salt_size.to_le_bytes());
        put(&mut b, OFF_SALT, &self.salt);
        Ok(b)
    }

    /// Decodes a superblock from the first [`SUPERBLOCK_SIZE`] bytes of `bytes`. Never panics
    /// (every read goes through [`measurements::reader`]); checks the signature, the
    /// superblock version and the salt size.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let b = reader::slice(bytes, 0, SUPERBLOCK_SIZE).ok_or(Error::Superblock {
            field: "length",
            value: bytes.len() as u64,
        })?;
        // Every field below lies inside the 512 bytes just checked; `field` names the one a
        // short read would be (it cannot happen).
        let field = |name: &'static str| Error::Superblock {
            field: name,
            value: SUPERBLOCK_SIZE as u64,
        };
        let signature: [u8; 8] = reader::array(b, 0).ok_or(field("signature"))?;
        if signature != SIGNATURE {
            return Err(Error::Superblock {
                field: "signature",
                value: u64::from_le_bytes(signature),
            });
        }
        let version = reader::u32_le(b, OFF_VERSION).ok_or(field("version"))?;
        if version != SUPERBLOCK_VERSION {
            return Err(Error::Superblock {
                field: "version",
                value: version.into(),
            });
        }
        let salt_size = reader::u16_le(b, OFF_SALT_SIZE).ok_or(field("salt_size"))?;
        if usize::from(salt_size) > MAX_SALT_SIZE {
            return Err(Error::Superblock {
                field: "salt_size",
                value: salt_size.into(),
            });
        }
        let algorithm = reader::slice(b, OFF_ALGORITHM, ALGORITHM_LEN).ok_or(field("algorithm"))?;
        let name = algorithm.split(|&c| c == 0).next().unwrap_or_default();
        let algorithm = std::str::from_utf8(name).map_err(|_| Error::Superblock {
            field: "algorithm",
            value: name.len() as u64,
        })?;
        Ok(Superblock {
            hash_type: reader::u32_le(b, OFF_HASH_TYPE).ok_or(field("hash_type"))?,
            uuid: reader::array(b, OFF_UUID).ok_or(field("uuid"))?,
            algorithm: algorithm.to_owned(),
            data_block_size: reader::u32_le(b, OFF_DATA_BLOCK_SIZE)
                .ok_or(field("data_block_size"))?,
            hash_block_size: reader::u32_le(b, OFF_HASH_BLOCK_SIZE)
                .ok_or(field("hash_block_size"))?,
            data_blocks: reader::u64_le(b, OFF_DATA_BLOCKS).ok_or(field("data_blocks"))?,
            salt: reader::slice(b, OFF_SALT, usize::from(salt_size))
                .ok_or(field("salt"))?
                .to_vec(),
        })
    }
}

/// Copies `src` into the fixed-size block at a constant offset (all callers pass constants
/// whose ranges lie inside the 512-byte block; the salt is checked to be ≤ 256 bytes first).
fn put(block: &mut [u8; SUPERBLOCK_SIZE], offset: usize, src: &[u8]) {
    block[offset..offset + src.len()].copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            hash_type: 1,
            uuid: [0x12; 16],
            algorithm: ALGORITHM.to_owned(),
            data_block_size: 4096,
            hash_block_size: 4096,
            data_blocks: 0x1_0000_0001,
            salt: vec![0xab; 256],
        }
    }

    #[test]
    fn round_trips() {
        let sb = sample();
        let bytes = sb.to_bytes().unwrap();
        assert_eq!(Superblock::parse(&bytes).unwrap(), sb);
        // Fixed offsets straight from the documented layout.
        assert_eq!(&bytes[..8], b"verity\0\0");
        assert_eq!(&bytes[72..80], &[1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&bytes[80..82], &[0, 1]);
        assert!(bytes[344..].iter().all(|&b| b == 0));
    }

    #[test]
    fn rejects_hostile_bytes_without_panicking() {
        let good = sample().to_bytes().unwrap();
        assert!(matches!(
            Superblock::parse(&good[..511]),
            Err(Error::Superblock {
                field: "length",
                ..
            })
        ));
        let mut bad = good;
        bad[0] = b'V';
        assert!(matches!(
            Superblock::parse(&bad),
            Err(Error::Superblock {
                field: "signature",
                ..
            })
        ));
        let mut bad = good;
        bad[8] = 2;
        assert!(matches!(
            Superblock::parse(&bad),
            Err(Error::Superblock {
                field: "version",
                ..
            })
        ));
        let mut bad = good;
        bad[80..82].copy_from_slice(&257u16.to_le_bytes());
        assert!(matches!(
            Superblock::parse(&bad),
            Err(Error::Superblock {
                field: "salt_size",
                ..
            })
        ));
        let mut bad = good;
        bad[32..64].fill(0xff);
        assert!(matches!(
            Superblock::parse(&bad),
            Err(Error::Superblock {
                field: "algorithm",
                ..
            })
        ));
        for len in 0..600 {
            let _ = Superblock::parse(&vec![0xffu8; len]);
        }
    }

    #[test]
    fn rejects_long_salt() {
        let mut sb = sample();
        sb.salt = vec![0; 257];
        assert!(matches!(
            sb.to_bytes(),
            Err(Error::SaltTooLong { len: 257 })
        ));
    }
}

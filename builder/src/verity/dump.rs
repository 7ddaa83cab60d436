//! A readable dump of a hash area: the superblock fields and where each tree level lies.
//!
//! Input bytes are untrusted (an area read back from an image): every field is checked
//! before it is used, and nothing here panics.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::{Error, Layout, Params, Superblock};

/// Dumps the hash area `area` (superblock block first, as [`super::build_at`] returns it).
///
/// The text is stable: tests snapshot it. When the tree has levels, the root hash is
/// recomputed from the top level block, which is what the kernel compares with the root hash
/// it was given.
pub fn dump(area: &[u8]) -> Result<String, Error> {
    let sb = Superblock::parse(area)?;
    if sb.hash_type != super::superblock::HASH_TYPE {
        return Err(Error::Superblock {
            field: "hash_type",
            value: sb.hash_type.into(),
        });
    }
    if sb.algorithm != super::superblock::ALGORITHM {
        return Err(Error::Superblock {
            field: "algorithm",
            value: sb.algorithm.len() as u64,
        });
    }
    let params = Params {
        salt: sb.salt.clone(),
        uuid: sb.uuid,
        data_block_size: sb.data_block_size,
        hash_block_size: sb.hash_block_size,
    };
    let data_size = sb
        .data_blocks
        .checked_mul(u64::from(sb.data_block_size))
        .ok_or(Error::Superblock {
            field: "data_blocks",
            value: sb.data_blocks,
        })?;
    let layout = Layout::new(&params, data_size)?;
    let expected = layout.area_size();
    if (area.len() as u64) < expected {
        return Err(Error::AreaTooShort {
            len: area.len() as u64,
            expected,
        });
    }

    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored below for that reason.
    let _ = writeln!(out, "verity superblock");
    let _ = writeln!(out, "  hash_type        {}", sb.hash_type);
    let _ = writeln!(out, "  uuid             {}", uuid_string(&sb.uuid));
    let _ = writeln!(out, "  algorithm        {}", sb.algorithm);
    let _ = writeln!(out, "  data_block_size  {}", sb.data_block_size);
    let _ = writeln!(out, "  hash_block_size  {}", sb.hash_block_size);
    let _ = writeln!(out, "  data_blocks      {}", sb.data_blocks);
    let _ = writeln!(
        out,
        "  salt             {} bytes {}",
        sb.salt.len(),
        hex::encode(&sb.salt)
    );
    let _ = writeln!(
        out,
        "tree ({} levels, byte offsets within the area)",
        layout.levels()
    );
    for i in (0..layout.levels()).rev() {
        let r = layout.level_range(i);
        let _ = writeln!(
            out,
            "  level {i:<2}  offset {:<10} blocks {}",
            r.start, layout.level_blocks[i]
        );
    }
    let _ = writeln!(out, "hash_blocks        {}", layout.hash_blocks());
    let _ = writeln!(out, "area_size          {expected}");
    if let Some(top) = layout
        .levels()
        .checked_sub(1)
        .map(|i| layout.level_range(i))
    {
        // `area` holds at least `expected` bytes, which covers every level range.
        let block = area.get(top).ok_or(Error::AreaTooShort {
            len: area.len() as u64,
            expected,
        })?;
        let root: [u8; 32] = Sha256::new_with_prefix(&sb.salt)
            .chain_update(block)
            .finalize()
            .into();
        let _ = writeln!(out, "root_hash          {}", hex::encode(root));
    } else {
        let _ = writeln!(
            out,
            "root_hash          (one data block: the root is its digest)"
        );
    }
    Ok(out)
}

/// The textual form veritysetup prints (`uuid_unparse`).
pub(crate) fn uuid_string(uuid: &[u8; 16]) -> String {
    let h = hex::encode(uuid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

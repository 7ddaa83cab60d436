//! `bench-verity DATA HASH_OUT`: the dm-verity tree of DATA (a multiple of 4096 bytes) with the
//! builder's library, written to HASH_OUT as veritysetup would (superblock, then the levels).
//! Prints the root hash. Used by `scripts/bench.sh` against `veritysetup format DATA HASH_OUT`
//! on the same file; not part of the tests.
#![allow(clippy::print_stdout)]

use std::io::Write as _;

use anyhow::Context as _;
use builder::verity;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(data), Some(out)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bench-verity DATA HASH_OUT");
    };
    let file = fs_err::File::open(&data)?;
    let size = file.metadata()?.len();
    // A fixed salt and UUID: only the time matters here.
    let params = verity::Params::new(vec![0x5a; 32], [7; 16]);
    let tree = verity::build_at(&file, size, &params).context("computing the tree")?;
    let mut w = fs_err::File::create(&out)?;
    w.write_all(&tree.area)?;
    println!("{}", tree.root.root_hash_hex());
    Ok(())
}

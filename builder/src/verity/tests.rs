use std::collections::HashSet;
use std::io;
use std::sync::Mutex;

use super::*;

fn params() -> Params {
    Params::new(b"salt".to_vec(), [7; 16])
}

/// cryptsetup's `hash_levels` (lib/verity/verity_hash.c), restated from its description:
/// levels = least L with (blocks - 1) >> (bits * L) == 0; level i holds
/// ceil(blocks / 2^((i + 1) * bits)) blocks.
fn reference_levels(data_blocks: u64, hash_block_size: u32) -> Vec<u64> {
    let bits = (hash_block_size / 32).trailing_zeros();
    let mut levels = 0;
    while bits * levels < 64 && (data_blocks - 1) >> (bits * levels) != 0 {
        levels += 1;
    }
    (0..levels)
        .map(|i| {
            let shift = (i + 1) * bits;
            if shift >= 64 {
                1
            } else {
                data_blocks.div_ceil(1 << shift)
            }
        })
        .collect()
}

#[test]
fn level_sizes_match_cryptsetup_formula() {
    for hbs in [512u32, 4096, 65536] {
        for blocks in [
            1u64,
            2,
            15,
            16,
            17,
            127,
            128,
            129,
            16384,
            16385,
            2_097_152,
            2_097_153,
            1 << 40,
        ] {
            let p = Params {
                hash_block_size: hbs,
                ..params()
            };
            let layout = Layout::new(&p, blocks * 4096).unwrap();
            assert_eq!(
                layout.level_blocks,
                reference_levels(blocks, hbs),
                "hbs {hbs} blocks {blocks}"
            );
        }
    }
}

#[test]
fn block_size_is_parsed() {
    for ok in [512u32, 1024, 4096, 65536] {
        assert_eq!(BlockSize::try_from(ok).unwrap().get(), ok);
    }
    for bad in [0u32, 1, 256, 511, 513, 3000, 4095, 131072, u32::MAX] {
        assert!(
            matches!(BlockSize::try_from(bad), Err(Error::InvalidBlockSize { value, .. }) if value == bad)
        );
    }
}

#[test]
fn bad_params_are_typed_errors() {
    let empty: &[u8] = &[];
    let p = Params {
        data_block_size: 1000,
        ..params()
    };
    assert!(matches!(
        build_at(empty, 4096, &p),
        Err(Error::InvalidBlockSize {
            field: "data_block_size",
            value: 1000
        })
    ));
    let p = Params {
        hash_block_size: 1 << 20,
        ..params()
    };
    assert!(matches!(
        build_at(empty, 4096, &p),
        Err(Error::InvalidBlockSize {
            field: "hash_block_size",
            ..
        })
    ));
    let p = Params {
        salt: vec![0; 257],
        ..params()
    };
    assert!(matches!(
        build_at(empty, 4096, &p),
        Err(Error::SaltTooLong { len: 257 })
    ));
    assert!(matches!(
        build_at(empty, 0, &params()),
        Err(Error::EmptyData)
    ));
    assert!(matches!(
        build_at(empty, 4097, &params()),
        Err(Error::UnalignedDataSize {
            data_size: 4097,
            data_block_size: 4096
        })
    ));
    assert!(matches!(
        build_at(empty, u64::MAX - 4095, &params()),
        Err(Error::TooLarge { .. })
    ));
    // A salt of exactly 256 bytes is fine.
    let p = Params {
        salt: vec![1; 256],
        ..params()
    };
    build_at(&[0u8; 4096][..], 4096, &p).unwrap();
}

/// `len` bytes of `byte`, then the end (`io::repeat(byte).take(len)` read at any offset).
struct Repeat {
    byte: u8,
    len: u64,
}

impl ReadAt for Repeat {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = buf.len().min(self.len.saturating_sub(offset) as usize);
        buf[..n].fill(self.byte);
        Ok(n)
    }
}

/// Zeros in reads of at most 1000 bytes; a read starting at or after byte `.0` fails.
struct Failing(u64);

impl ReadAt for Failing {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.0 {
            return Err(io::Error::other("boom"));
        }
        let n = buf.len().min(1000);
        buf[..n].fill(0);
        Ok(n)
    }
}

#[test]
fn short_and_failing_readers_are_errors() {
    let short = Repeat {
        byte: 1,
        len: 4096 * 3,
    };
    assert!(matches!(
        build_at(&short, 4096 * 4, &params()),
        Err(Error::Truncated {
            offset: 12288,
            data_size: 16384
        })
    ));
    // The same through the slice implementation.
    assert!(matches!(
        build_at(&[1u8; 4096 * 3][..], 4096 * 4, &params()),
        Err(Error::Truncated {
            offset: 12288,
            data_size: 16384
        })
    ));
    // Short in a later piece, too (the pieces before the last are whole).
    let size = 3 * PIECE_BYTES as u64 + 2 * 4096;
    let short = Repeat {
        byte: 1,
        len: size - 4096,
    };
    assert!(matches!(
        build_at(&short, size, &params()),
        Err(Error::Truncated { offset, data_size }) if offset == size - 4096 && data_size == size
    ));

    // Reads of 1000 bytes: the one at 4000 succeeds, the next (at 5000) fails.
    assert!(matches!(
        build_at(&Failing(5000), 8192, &params()),
        Err(Error::Read { offset: 5000, .. })
    ));
    // A read may run past the failing offset: the one at 8000 succeeds, the one at 9000 fails.
    assert!(matches!(
        build_at(&Failing(8192), 16384, &params()),
        Err(Error::Read { offset: 9000, .. })
    ));
}

#[test]
fn interrupted_and_tiny_reads_give_the_same_tree() {
    /// Bytes in memory whose first read at each offset is `Interrupted` and whose reads
    /// return at most 777 bytes.
    struct Awkward<'a> {
        data: &'a [u8],
        interrupted: Mutex<HashSet<u64>>,
    }
    impl ReadAt for Awkward<'_> {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            if self.interrupted.lock().unwrap().insert(offset) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(777);
            self.data.read_at(&mut buf[..n], offset)
        }
    }
    // 300 blocks: several pieces, the last one short.
    let data: Vec<u8> = (0..4096 * 300u32).map(|i| (i * 7 % 251) as u8).collect();
    let a = build_at(&data[..], data.len() as u64, &params()).unwrap();
    let awkward = Awkward {
        data: &data,
        interrupted: Mutex::new(HashSet::new()),
    };
    let b = build_at(&awkward, data.len() as u64, &params()).unwrap();
    assert_eq!(a.root.root_hash, b.root.root_hash);
    assert_eq!(a.area, b.area);
    // Reads were short (at most 777 bytes) and each was interrupted once.
    assert!(awkward.interrupted.into_inner().unwrap().len() >= data.len().div_ceil(777));
}

#[test]
fn single_block_root_is_the_salted_block_digest() {
    // Straight from the format description, computed without the module's helpers.
    let block = [0x5au8; 4096];
    let tree = build_at(&block[..], 4096, &params()).unwrap();
    let expected: [u8; 32] = Sha256::new()
        .chain_update(b"salt")
        .chain_update(block)
        .finalize()
        .into();
    assert_eq!(tree.root.root_hash, expected);
    assert_eq!(tree.root.hash_blocks, 0);
    assert_eq!(tree.area.len(), 4096);
}

#[test]
fn two_level_tree_by_hand() {
    // 129 blocks with 4096-byte hash blocks: level 0 has 2 blocks, level 1 has 1.
    let data: Vec<u8> = (0..129u32).flat_map(|i| [i as u8; 4096]).collect();
    let tree = build_at(&data[..], data.len() as u64, &params()).unwrap();
    let h = |b: &[u8]| -> [u8; 32] {
        Sha256::new()
            .chain_update(b"salt")
            .chain_update(b)
            .finalize()
            .into()
    };
    let mut level0 = vec![0u8; 2 * 4096];
    for (i, b) in data.chunks(4096).enumerate() {
        level0[i * 32..i * 32 + 32].copy_from_slice(&h(b));
    }
    let mut level1 = vec![0u8; 4096];
    level1[..32].copy_from_slice(&h(&level0[..4096]));
    level1[32..64].copy_from_slice(&h(&level0[4096..]));
    assert_eq!(&tree.area[4096..8192], &level1[..]);
    assert_eq!(&tree.area[8192..], &level0[..]);
    assert_eq!(tree.root.root_hash, h(&level1));
}

#[test]
fn dm_table_line() {
    let data = vec![0u8; 4096 * 200];
    let tree = build_at(&data[..], data.len() as u64, &params()).unwrap();
    let root = tree.root.root_hash_hex();
    assert_eq!(
        tree.root
            .dm_table("/dev/vda", "/dev/vda", data.len() as u64, &[])
            .unwrap(),
        format!("0 1600 verity 1 /dev/vda /dev/vda 4096 4096 200 201 sha256 {root} 73616c74")
    );
    assert_eq!(
        tree.root.dm_table("/dev/a", "/dev/b", 0, &["ignore_zero_blocks", "use_fec_from_device /dev/c"]).unwrap(),
        format!("0 1600 verity 1 /dev/a /dev/b 4096 4096 200 1 sha256 {root} 73616c74 3 ignore_zero_blocks use_fec_from_device /dev/c")
    );
    assert!(matches!(
        tree.root.dm_table("/dev/a", "/dev/a", 512, &[]),
        Err(Error::UnalignedHashOffset {
            hash_offset: 512,
            hash_block_size: 4096
        })
    ));
    let unsalted = build_at(
        &data[..],
        data.len() as u64,
        &Params {
            salt: vec![],
            ..params()
        },
    )
    .unwrap();
    assert!(unsalted
        .root
        .dm_table("a", "b", 0, &[])
        .unwrap()
        .ends_with(" -"));
}

#[test]
fn dump_reads_back_what_build_wrote() {
    let data: Vec<u8> = (0..129u32).flat_map(|i| [i as u8; 4096]).collect();
    let tree = build_at(&data[..], data.len() as u64, &params()).unwrap();
    let text = dump(&tree.area).unwrap();
    assert!(
        text.contains(&format!("root_hash          {}", tree.root.root_hash_hex())),
        "{text}"
    );
    assert!(
        text.contains("  level 1   offset 4096       blocks 1\n"),
        "{text}"
    );
    assert!(
        text.contains("  level 0   offset 8192       blocks 2\n"),
        "{text}"
    );
    assert!(matches!(
        dump(&tree.area[..tree.area.len() - 1]),
        Err(Error::AreaTooShort {
            len: 16383,
            expected: 16384
        })
    ));
}

proptest::proptest! {
    #[test]
    fn dump_never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1200)) {
        let _ = dump(&bytes);
    }

    #[test]
    fn dump_never_panics_on_mutated_areas(
        edits in proptest::collection::vec((0usize..512, proptest::prelude::any::<u8>()), 1..8),
        cut in 0usize..20000,
    ) {
        let data = vec![3u8; 4096 * 130];
        let tree = build_at(&data[..], data.len() as u64, &params()).unwrap();
        let mut area = tree.area;
        for (at, byte) in edits {
            area[at] = byte;
        }
        area.truncate(cut);
        let _ = dump(&area);
    }
}

#[test]
fn tee_gives_the_tree_and_sha256_of_what_passed_through() {
    // 3 chunks and a bit of data (crossing the tee's chunks), in uneven writes.
    let data: Vec<u8> = (0..(3 * PIECE_BYTES + 5 * 4096) as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let p = params();
    let mut out = Vec::new();
    // Extra streams: a 4 KiB-aligned range across chunks with a tail from before it (a
    // tail-packed file), one off the 64-byte grid (one lane), a tail only, and nothing.
    let also = [
        Also {
            first: 4096..(2 * PIECE_BYTES + 3 * 4096) as u64,
            then: 1000..1500,
        },
        Also {
            first: (2 * PIECE_BYTES + 3 * 4096 + 7) as u64..(3 * PIECE_BYTES + 100) as u64,
            then: 0..0,
        },
        Also {
            first: 0..0,
            then: 3..30,
        },
        Also {
            first: 10..10,
            then: 10..10,
        },
    ];
    let mut level0 = Vec::new();
    let ((), teed) = tee(
        &mut out,
        BlockSize::DEFAULT,
        &p.salt,
        &also,
        &mut |d: &[u8]| {
            level0.extend_from_slice(d);
            Ok(())
        },
        |w| {
            for piece in data.chunks(77_777) {
                w.write_all(piece)?;
            }
            Ok::<(), io::Error>(())
        },
    )
    .unwrap();
    assert_eq!(out, data, "the bytes pass through unchanged");
    assert_eq!(teed.size, data.len() as u64);
    assert_eq!(
        teed.sha256.finalize(),
        <[u8; 32]>::from(Sha256::digest(&data))
    );
    let at = |r: &std::ops::Range<u64>| &data[r.start as usize..r.end as usize];
    let expected: Vec<[u8; 32]> = also
        .iter()
        .map(|a| {
            Sha256::new()
                .chain_update(at(&a.first))
                .chain_update(at(&a.then))
                .finalize()
                .into()
        })
        .collect();
    assert_eq!(teed.also, expected);
    let streamed = from_level0(&p, data.len() as u64, &level0).unwrap();
    let read = build_at(&data[..], data.len() as u64, &p).unwrap();
    assert_eq!(streamed.root.root_hash, read.root.root_hash);
    assert_eq!(streamed.area, read.area);
    // A level 0 of the wrong length is refused, not padded.
    assert!(from_level0(&p, data.len() as u64 + 4096, &level0).is_err());
}

/// `tee` returns the failing side's own error: the writer's, or the level-0 sink's rather than
/// the writer's "a dm-verity hashing thread stopped" that follows from it.
#[test]
fn tee_returns_the_failing_side_s_own_error() {
    type Sink<'a> = &'a mut (dyn FnMut(&[u8]) -> io::Result<()> + Send);
    let error = |level0: Sink, len: usize, writer_fails: bool| {
        let ((), _) = tee(&mut Vec::new(), BlockSize::DEFAULT, b"", &[], level0, |w| {
            w.write_all(&vec![1; len])?;
            match writer_fails {
                true => Err(io::Error::other("the writer failed")),
                false => Ok(()),
            }
        })
        .map_err(|e: io::Error| e.to_string())?;
        Ok::<(), String>(())
    };
    assert_eq!(
        error(&mut |_| Ok(()), 10_000, true),
        Err("the writer failed".into())
    );
    // Enough chunks that the writer finds the level-0 thread gone.
    assert_eq!(
        error(
            &mut |_| Err(io::Error::other("the tree's file is full")),
            200 * PIECE_BYTES,
            false
        ),
        Err("the tree's file is full".into())
    );
    assert_eq!(error(&mut |_| Ok(()), 10_000, false), Ok(()));
}

#[test]
fn tee_refuses_extra_streams_that_overlap() {
    let overlapping = [
        Also {
            first: 0..8192,
            then: 0..0,
        },
        Also {
            first: 4096..10_000,
            then: 0..0,
        },
    ];
    let err = tee(
        &mut Vec::new(),
        BlockSize::DEFAULT,
        b"",
        &overlapping,
        &mut |_: &[u8]| Ok(()),
        |w| w.write_all(&[1; 10_000]),
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// `sha256(salt ‖ block)` straight from the format description, without the module's helpers.
fn salted_digest(salt: &[u8], block: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(salt)
        .chain_update(block)
        .finalize()
        .into()
}

#[test]
fn block_digests_sixteen_two_and_one_at_a_time_are_sha256_of_salt_and_block() {
    let salt = b"a salt of 32 bytes, as in builds";
    let data: Vec<u8> = (0..4096 * 37 + 100u32)
        .map(|i| (i * 13 % 241) as u8)
        .collect();
    // Odd and even block counts, fewer than sixteen, whole groups of sixteen and more, and a
    // short last block (a hash level's last block is whole, but the helper must not pair
    // blocks of different lengths).
    for (len, block) in [
        (4096 * 7, 4096),
        (4096 * 6, 4096),
        (4096 * 32, 4096),
        (4096 * 37, 4096),
        (data.len(), 4096),
        (4096, 512),
        (4096 * 16, 512),
    ] {
        let expected: Vec<u8> = data[..len]
            .chunks(block)
            .flat_map(|b| salted_digest(salt, b))
            .collect();
        for salted in [
            Salted::new(salt),
            Salted::all_lanes(salt),
            Salted::two_lanes(salt),
            Salted::one_lane(salt),
        ] {
            let mut out = vec![0u8; expected.len()];
            salted.digest_blocks(&data[..len], block, &mut out);
            assert!(
                out == expected,
                "{len} bytes in {block}-byte blocks, two lanes: {}, sixteen: {}",
                salted.two.is_some(),
                salted.sixteen.is_some()
            );
        }
    }
    // This machine class (x86-64 with the SHA extensions) has the two-lane path, and the
    // sixteen-lane one with AVX-512 (which `Salted::new` takes where it measured faster).
    if std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse4.1") {
        assert!(Salted::new(salt).two.is_some());
    }
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
    {
        assert!(Salted::all_lanes(salt).sixteen.is_some());
    }
}

#[test]
fn build_at_over_a_file_and_over_memory_gives_the_level0_of_the_format() {
    // 3 MiB + 5 blocks spans several pieces, with a short last one.
    let data: Vec<u8> = (0..(3 << 20) + 5 * 4096u32)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    let size = data.len() as u64;
    let p = params();
    let memory = build_at(&data[..], size, &p).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    fs_err::write(&path, &data).unwrap();
    let on_disk = build_at(&fs_err::File::open(&path).unwrap(), size, &p).unwrap();
    assert_eq!(memory.root.root_hash, on_disk.root.root_hash);
    assert!(memory.area == on_disk.area);
    // 773 blocks: level 0 is 7 hash blocks after the superblock and the root level, and holds
    // each block's digest, computed here straight from the format description, in order.
    let level0: Vec<u8> = data
        .chunks(4096)
        .flat_map(|b| salted_digest(&p.salt, b))
        .collect();
    assert_eq!(memory.area.len(), (2 + 7) * 4096);
    assert!(memory.area[2 * 4096..2 * 4096 + level0.len()] == level0[..]);
    assert!(memory.area[2 * 4096 + level0.len()..]
        .iter()
        .all(|&b| b == 0));
}

/// The hash area straight from the format description (module doc): level 0 is the digests
/// zero-padded to whole hash blocks, each level above hashes the blocks of the one below
/// until a level is one block, and the area is the superblock block then the levels from the
/// top down. Returns the root and the area after the superblock block.
fn naive_tree(salt: &[u8], level0: &[u8], hbs: usize) -> ([u8; 32], Vec<u8>) {
    if level0.len() == 32 {
        return (level0.try_into().unwrap(), Vec::new());
    }
    let pad = |mut v: Vec<u8>| {
        v.resize(v.len().div_ceil(hbs) * hbs, 0);
        v
    };
    let mut levels = vec![pad(level0.to_vec())];
    while levels.last().unwrap().len() > hbs {
        let below = levels.last().unwrap();
        let above: Vec<u8> = below
            .chunks(hbs)
            .flat_map(|b| salted_digest(salt, b))
            .collect();
        levels.push(pad(above));
    }
    let root = salted_digest(salt, levels.last().unwrap());
    (root, levels.into_iter().rev().flatten().collect())
}

/// The area streamed into a file, the level-0 digests given in pieces of every kind (one
/// digest, a few, more than a flush at once, all at once), is the format's, for trees of one
/// to three levels, both sides of each level's block boundaries, two hash block sizes.
#[test]
fn a_streamed_tree_is_the_format_s_area_whatever_the_pieces() {
    let dir = tempfile::tempdir().unwrap();
    for (hbs, blocks) in [
        (4096u32, 1u64),
        (4096, 2),
        (4096, 127),
        (4096, 128),
        (4096, 129),
        (4096, 128 * 128),
        (4096, 128 * 128 + 1),
        (4096, 2 * 128 * 128 + 77),
        (512, 16),
        (512, 17),
        (512, 257),
        (512, 16 * 16 * 16 + 1),
    ] {
        let p = Params {
            hash_block_size: hbs,
            ..Params::new(b"a salt of 32 bytes, as in builds".to_vec(), [3; 16])
        };
        let level0: Vec<u8> = (0..blocks * 32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        let (root, levels) = naive_tree(&p.salt, &level0, hbs as usize);
        let data_size = blocks * 4096;
        for pieces in [
            vec![level0.len()],
            vec![32],
            vec![32 * 5, 32 * 3000, 32, 32 * 64],
        ] {
            let path = dir.path().join("area");
            let file = fs_err::File::create(&path).unwrap();
            let mut w = TreeWriter::new(&p, data_size, file).unwrap();
            let mut rest = &level0[..];
            for &n in pieces.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, after) = rest.split_at(n.min(rest.len()));
                w.push(piece).unwrap();
                rest = after;
            }
            let (tree, _) = w.finish().unwrap();
            let area = fs_err::read(&path).unwrap();
            let what = format!("{blocks} blocks, {hbs}-byte hash blocks, pieces {pieces:?}");
            assert_eq!(tree.root_hash, root, "{what}");
            assert_eq!(area.len() as u64, tree.layout.area_size(), "{what}");
            assert!(area[hbs as usize..] == levels[..], "{what}");
            assert_eq!(
                Superblock::parse(&area).unwrap().data_blocks,
                blocks,
                "{what}"
            );
            assert_eq!(tree.data_blocks, blocks, "{what}");
        }
        // The in-memory tree is the same.
        let memory = from_level0(&p, data_size, &level0).unwrap();
        assert_eq!(memory.root.root_hash, root);
        assert!(memory.area[hbs as usize..] == levels[..]);
    }
}

/// Too many digests, too few, and a file that cannot be written are errors that say which.
#[test]
fn a_streamed_tree_refuses_the_wrong_digest_count_and_names_a_failed_write() {
    let p = params();
    let sink = || fs_err::File::create(tempfile::NamedTempFile::new().unwrap().path()).unwrap();
    let mut w = TreeWriter::new(&p, 3 * 4096, sink()).unwrap();
    w.push(&[1; 64]).unwrap();
    assert!(matches!(
        w.push(&[1; 64]),
        Err(Error::Overrun { data_size: 12_288 })
    ));
    let mut w = TreeWriter::new(&p, 3 * 4096, sink()).unwrap();
    w.push(&[1; 64]).unwrap();
    assert!(matches!(
        w.finish(),
        Err(Error::Truncated {
            offset: 8192,
            data_size: 12_288
        })
    ));
    // /dev/full: every write fails with "no space left".
    let full = fs_err::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut w = TreeWriter::new(&p, 200 * 4096, full).unwrap();
    w.push(&[1; 200 * 32]).unwrap();
    let err = w.finish().unwrap_err();
    assert!(
        matches!(&err, Error::Write { offset, source } if *offset == 2 * 4096
            && source.raw_os_error() == Some(28)),
        "{err:?}"
    );
    assert!(err.to_string().contains("at byte 8192"), "{err}");
}

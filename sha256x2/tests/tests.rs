//! Two- and sixteen-lane SHA-256 against the `sha2` crate (an independent implementation) and
//! the FIPS 180-2 appendix B vectors.

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use sha256x2::{LengthMismatch, Sha256x16, Sha256x2, ShapeMismatch, Stream};

/// The hasher, on the machines this project builds on (x86-64 with the SHA extensions). On
/// others the tests have nothing to check; `new` returning `None` there is checked below.
fn hasher(prefix: &[u8]) -> Option<Sha256x2> {
    let h = Sha256x2::new(prefix);
    if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("sha") {
        assert!(h.is_some(), "the CPU has the SHA extensions, yet no hasher");
    } else {
        assert!(h.is_none());
    }
    h
}

fn reference(prefix: &[u8], data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(data);
    h.finalize().into()
}

/// Deterministic bytes (an LCG): distinct per `seed`.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 33) as u8
        })
        .collect()
}

#[test]
fn fips_180_2_vectors() {
    let Some(h) = hasher(b"") else { return };
    // FIPS 180-2 appendix B.1 ("abc") and B.2 (the 448-bit message), written out by hand.
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let two_blocks = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
    let [x, y] = h
        .digest_pair(
            b"abc", b"abd", // only the first lane is checked against B.1
        )
        .unwrap();
    assert_eq!(hex(&x), abc);
    assert_ne!(x, y);
    let m = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    let [x, y] = h.digest_pair(m, m).unwrap();
    assert_eq!(hex(&x), two_blocks);
    assert_eq!(hex(&y), two_blocks);
    // The same vectors with part of the message as the prefix.
    let h = hasher(b"ab").unwrap();
    assert_eq!(hex(&h.digest_pair(b"c", b"c").unwrap()[1]), abc);
    let h = hasher(&m[..40]).unwrap();
    assert_eq!(
        hex(&h.digest_pair(&m[40..], &m[40..]).unwrap()[0]),
        two_blocks
    );
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_prefix_and_message_length_around_the_block_edges() {
    if hasher(b"").is_none() {
        return;
    }
    for prefix_len in (0..=130).chain([255, 256]) {
        let prefix = bytes(prefix_len, prefix_len as u64);
        let h = hasher(&prefix).unwrap();
        for len in (0..=200).chain([4096, 4096 + 1, 8192 - 1]) {
            let a = bytes(len, 1000 + len as u64);
            let b = bytes(len, 2000 + len as u64);
            let [x, y] = h.digest_pair(&a, &b).unwrap();
            assert_eq!(
                x,
                reference(&prefix, &a),
                "prefix {prefix_len}, length {len}, lane a"
            );
            assert_eq!(
                y,
                reference(&prefix, &b),
                "prefix {prefix_len}, length {len}, lane b"
            );
        }
    }
}

#[test]
fn verity_blocks_with_a_salt() {
    // dm-verity's case: a 32-byte salt and 4 KiB blocks, and the 512 B to 64 KiB extremes.
    let salt = bytes(32, 7);
    let Some(h) = hasher(&salt) else { return };
    for block in [512, 4096, 65536] {
        let a = bytes(block, 1);
        let b = bytes(block, 2);
        assert_eq!(
            h.digest_pair(&a, &b).unwrap(),
            [reference(&salt, &a), reference(&salt, &b)]
        );
        // Equal blocks give equal digests (the lanes do not mix).
        let [x, y] = h.digest_pair(&a, &a).unwrap();
        assert_eq!(x, y);
    }
}

#[test]
fn messages_of_different_lengths_are_refused() {
    let Some(h) = hasher(b"salt") else { return };
    assert_eq!(
        h.digest_pair(b"abc", b"abcd"),
        Err(LengthMismatch {
            first: 3,
            second: 4
        })
    );
}

#[test]
fn a_stream_gives_the_fips_vectors() {
    // FIPS 180-2 appendix B.1 and B.2, as above; and the empty message (FIPS 180-4's
    // examples, also `sha256sum </dev/null`).
    let cases: [(&[u8], &str); 3] = [
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
    ];
    for (message, expected) in cases {
        let mut s = Stream::new();
        s.update(message);
        assert_eq!(s.len(), message.len() as u64);
        assert_eq!(hex(&s.finalize()), expected);
    }
}

/// `update_both` over `data` in `pieces`, after `a` was given `before`: both streams must end
/// as `sha2` says, whichever path (two lanes or one) each piece took.
fn both_after(h: &Sha256x2, before: &[u8], data: &[u8], pieces: &[usize]) {
    let mut a = Stream::new();
    a.update(before);
    let mut b = Stream::new();
    let mut rest = data;
    for &n in pieces.iter().chain(std::iter::once(&usize::MAX)) {
        let (piece, after) = rest.split_at(n.min(rest.len()));
        h.update_both(&mut a, &mut b, piece);
        rest = after;
    }
    let what = format!(
        "{} bytes before, {} bytes in pieces {pieces:?}",
        before.len(),
        data.len()
    );
    assert_eq!(a.len(), (before.len() + data.len()) as u64, "{what}");
    assert_eq!(a.finalize(), reference(before, data), "{what}: stream a");
    assert_eq!(b.finalize(), reference(b"", data), "{what}: stream b");
}

#[test]
fn two_streams_fed_the_same_bytes_end_as_each_alone() {
    let Some(h) = hasher(b"") else { return };
    let data = bytes(3 * 4096 + 100, 9);
    // `a` at a block boundary (the image's sha256 where the weights start, 4 KiB-aligned),
    // and off it (one lane until both are at a boundary again: they never are here).
    for before in [0, 64, 4096, 4096 + 32, 1, 63] {
        let before = bytes(before, 3);
        for pieces in [&[][..], &[4096, 4096], &[64, 1, 63, 4096], &[100, 28, 8192]] {
            both_after(&h, &before, &data, pieces);
        }
    }
}

/// The sixteen-lane hasher, where the CPU has AVX-512 F and BW; `None` elsewhere (checked).
fn hasher16(prefix: &[u8]) -> Option<Sha256x16> {
    let h = Sha256x16::new(prefix);
    if cfg!(target_arch = "x86_64")
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
    {
        assert!(h.is_some(), "the CPU has AVX-512, yet no hasher");
    } else {
        assert!(h.is_none());
    }
    h
}

/// Sixteen parts of `len` bytes, each different, and their digests after `prefix` by `h`.
fn sixteen(h: &Sha256x16, len: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let data = bytes(16 * len, seed);
    let mut out = vec![0u8; 16 * 32];
    h.digest16(&data, &mut out).unwrap();
    (data, out)
}

#[test]
fn sixteen_lanes_give_the_fips_vectors() {
    let Some(h) = hasher16(b"") else { return };
    // FIPS 180-2 appendix B.1 and B.2 in lanes 0 and 15 (written out by hand above), other
    // messages of the same length in between.
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let two_blocks = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
    for (m, expected) in [
        (&b"abc"[..], abc),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            two_blocks,
        ),
    ] {
        let mut data = bytes(16 * m.len(), 3);
        data[..m.len()].copy_from_slice(m);
        data[15 * m.len()..].copy_from_slice(m);
        let mut out = vec![0u8; 16 * 32];
        h.digest16(&data, &mut out).unwrap();
        assert_eq!(hex(&out[..32]), expected);
        assert_eq!(hex(&out[15 * 32..]), expected);
        assert_ne!(out[32..64], out[..32]);
    }
}

#[test]
fn sixteen_lanes_at_every_prefix_and_length_around_the_block_edges() {
    if hasher16(b"").is_none() {
        return;
    }
    for prefix_len in (0..=130).step_by(7).chain([31, 32, 33, 63, 64, 65, 256]) {
        let prefix = bytes(prefix_len, prefix_len as u64);
        let h = hasher16(&prefix).unwrap();
        for len in (0..=140).chain([4096 - 33, 4096 - 32, 4096, 4097]) {
            let (data, out) = sixteen(&h, len, 5000 + len as u64);
            for (j, (m, d)) in data.chunks(len.max(1)).zip(out.chunks(32)).enumerate() {
                let m = if len == 0 { &[][..] } else { m };
                assert_eq!(
                    d,
                    reference(&prefix, m),
                    "prefix {prefix_len}, length {len}, lane {j}"
                );
            }
        }
    }
}

#[test]
fn sixteen_verity_blocks_with_a_salt() {
    // dm-verity's case: a 32-byte salt and 4 KiB blocks, and the 512 B to 64 KiB extremes.
    let salt = bytes(32, 7);
    let Some(h) = hasher16(&salt) else { return };
    for block in [512, 4096, 65536] {
        let (data, out) = sixteen(&h, block, block as u64);
        for (m, d) in data.chunks(block).zip(out.chunks(32)) {
            assert_eq!(d, reference(&salt, m));
        }
    }
    // Equal blocks give equal digests (the lanes do not mix).
    let mut data = bytes(4096, 9);
    data = data.repeat(16);
    let mut out = vec![0u8; 16 * 32];
    h.digest16(&data, &mut out).unwrap();
    assert!(out.chunks(32).all(|d| d == &out[..32]));
}

#[test]
fn sixteen_lanes_refuse_other_shapes() {
    let Some(h) = hasher16(b"salt") else { return };
    let mut out = vec![0u8; 16 * 32];
    assert_eq!(
        h.digest16(&[0; 17], &mut out),
        Err(ShapeMismatch { data: 17, out: 512 })
    );
    assert_eq!(
        h.digest16(&[0; 32], &mut out[..511]),
        Err(ShapeMismatch { data: 32, out: 511 })
    );
}

proptest! {
    #[test]
    fn sixteen_lanes_same_as_sha2(
        prefix in proptest::collection::vec(any::<u8>(), 0..200),
        len in 0usize..300,
        seed in any::<u64>(),
    ) {
        if let Some(h) = Sha256x16::new(&prefix) {
            let (data, out) = sixteen(&h, len, seed);
            for j in 0..16 {
                prop_assert_eq!(
                    &out[32 * j..32 * j + 32],
                    &reference(&prefix, &data[j * len..(j + 1) * len])[..]
                );
            }
        }
    }

    #[test]
    fn same_as_sha2(
        prefix in proptest::collection::vec(any::<u8>(), 0..300),
        pair in (0usize..600).prop_flat_map(|n| (
            proptest::collection::vec(any::<u8>(), n),
            proptest::collection::vec(any::<u8>(), n),
        )),
    ) {
        if let Some(h) = Sha256x2::new(&prefix) {
            let (a, b) = pair;
            let [x, y] = h.digest_pair(&a, &b).unwrap();
            prop_assert_eq!(x, reference(&prefix, &a));
            prop_assert_eq!(y, reference(&prefix, &b));
        }
    }

    #[test]
    fn a_stream_in_pieces_is_sha2(
        data in proptest::collection::vec(any::<u8>(), 0..700),
        cuts in proptest::collection::vec(0usize..700, 0..6),
    ) {
        let mut cuts = cuts;
        cuts.push(data.len());
        cuts.sort_unstable();
        let mut s = Stream::new();
        let mut at = 0;
        for cut in cuts {
            let cut = cut.min(data.len());
            if cut >= at {
                s.update(&data[at..cut]);
                at = cut;
            }
        }
        prop_assert_eq!(s.finalize(), reference(b"", &data));
    }
}

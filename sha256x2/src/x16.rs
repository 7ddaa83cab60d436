//! Sixteen messages at once with AVX-512: each 512-bit register holds one of SHA-256's
//! 32-bit words for sixteen messages, and every step of FIPS 180-4 section 6.2 is done for
//! all of them by one instruction (rotations `vprord`, the three-input functions Ch, Maj and
//! the XORs of Σ and σ `vpternlogd`). It does not use the SHA extensions: on CPUs whose SHA
//! unit gains little from two interleaved streams (the Intel Xeon of issue 13's stop 11: 1.16x)
//! it hashes dm-verity's 4 KiB blocks faster than [`crate::x86`] does.
//!
//! The sixteen messages lie at a fixed stride in memory (consecutive data blocks), so a
//! block's word `t` of every message is one gather (`vpgatherdd`) at `base + 4t` with the
//! messages' offsets as the indexes; the blocks that need the prefix's tail or the padding
//! are put together in a 1 KiB buffer first and gathered from it the same way.
//!
//! `unsafe` is allowed in this module only, for the two uses the crate's documentation names.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_i32gather_epi32, _mm512_ror_epi32, _mm512_set1_epi32,
    _mm512_set4_epi32, _mm512_setr_epi32, _mm512_setzero_si512, _mm512_shuffle_epi8,
    _mm512_srli_epi32, _mm512_storeu_si512, _mm512_ternarylogic_epi32,
};

use crate::{last_blocks, Stream, BLOCK, DIGEST_LEN, K};

/// Messages hashed at once.
pub(crate) const LANES: usize = 16;

/// The CPU features every function below is compiled for.
fn detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// The prefix hashed: the state after its whole blocks, and its last partial block.
#[derive(Clone)]
pub(crate) struct Prefixed16 {
    prefix: Stream,
}

impl Prefixed16 {
    /// `None` unless the CPU has AVX-512 F and BW.
    pub(crate) fn new(prefix: &[u8]) -> Option<Self> {
        detected().then(|| Prefixed16 {
            prefix: Stream::after(prefix),
        })
    }

    /// `sha256(prefix ‖ m)` of each of the sixteen equal parts `m` of `data`, in order, into
    /// consecutive 32-byte slots of `out`. The caller checked `data.len()` is a multiple of
    /// [`LANES`] whose part fits an `i32` sixteen times, and `out.len() == LANES * 32`.
    pub(crate) fn digest16(&self, data: &[u8], out: &mut [u8]) {
        // SAFETY: a `Prefixed16` exists only after `new` detected every feature `digest16` is
        // compiled for.
        unsafe { digest16(self, data, out) }
    }
}

/// Sixteen 64-byte blocks side by side, gathered from like the messages themselves.
#[repr(align(64))]
struct Blocks([[u8; BLOCK]; LANES]);

/// See [`Prefixed16::digest16`].
#[target_feature(enable = "avx512f,avx512bw")]
fn digest16(p: &Prefixed16, data: &[u8], out: &mut [u8]) {
    debug_assert!(data.len().is_multiple_of(LANES));
    debug_assert_eq!(out.len(), LANES * DIGEST_LEN);
    let len = data.len() / LANES;
    let lane = |j: usize| &data[j * len..(j + 1) * len];
    let p = &p.prefix;
    let mut s = p.state.map(|w| _mm512_set1_epi32(w as i32));
    let t = p.buffered;
    // As `x86::pair`: the message after the prefix's whole blocks is `tail ‖ m`. A first
    // block that needs the tail is put together; the following whole blocks are gathered in
    // place; the rest (with the tail, if no block was filled) goes into the padding.
    let (head, skip): (&[u8], usize) = if t == 0 {
        (&[], 0)
    } else if t + len >= BLOCK {
        let mut first = Blocks([[0; BLOCK]; LANES]);
        for (j, block) in first.0.iter_mut().enumerate() {
            block[..t].copy_from_slice(&p.buf[..t]);
            block[t..].copy_from_slice(&lane(j)[..BLOCK - t]);
        }
        compress_side_by_side(&mut s, &first);
        (&[], BLOCK - t)
    } else {
        (&p.buf[..t], 0)
    };
    let whole = (len - skip) / BLOCK;
    // The part's length fits an i32 sixteen times (the caller's check).
    let l = len as i32;
    let strided = _mm512_setr_epi32(
        0,
        l,
        2 * l,
        3 * l,
        4 * l,
        5 * l,
        6 * l,
        7 * l,
        8 * l,
        9 * l,
        10 * l,
        11 * l,
        12 * l,
        13 * l,
        14 * l,
        15 * l,
    );
    for k in 0..whole {
        let at = skip + k * BLOCK;
        // Lane j's block is `data[j * len + at..][..BLOCK]`: at + BLOCK <= skip + whole *
        // BLOCK <= len, so it lies within part j, and `at` within `data`.
        let base = data[at..].as_ptr();
        // SAFETY: every lane's 64 bytes from `base + offset` are within `data` (above).
        unsafe { compress_gathered(&mut s, base, strided) };
    }
    let total = p.len.wrapping_add(len as u64);
    let from = skip + whole * BLOCK;
    let mut last = [Blocks([[0; BLOCK]; LANES]), Blocks([[0; BLOCK]; LANES])];
    let mut count = 0;
    for j in 0..LANES {
        let (bytes, blocks) = last_blocks(head, &lane(j)[from..], total);
        let (bytes, _) = bytes.as_chunks::<BLOCK>();
        last[0].0[j] = bytes[0];
        last[1].0[j] = bytes[1];
        count = blocks;
    }
    for blocks in last.iter().take(count) {
        compress_side_by_side(&mut s, blocks);
    }
    let mut words = [[0u32; LANES]; 8];
    for (w, v) in words.iter_mut().zip(s) {
        // SAFETY: `w` is 64 writable bytes, what the store writes (no alignment needed).
        unsafe { _mm512_storeu_si512(w.as_mut_ptr().cast(), v) };
    }
    for (j, digest) in out.chunks_exact_mut(DIGEST_LEN).enumerate() {
        for (i, o) in digest.chunks_exact_mut(4).enumerate() {
            o.copy_from_slice(&words[i][j].to_be_bytes());
        }
    }
}

/// Compresses `blocks.0[j]` into lane `j` of `s`.
#[target_feature(enable = "avx512f,avx512bw")]
fn compress_side_by_side(s: &mut [__m512i; 8], blocks: &Blocks) {
    let side = _mm512_setr_epi32(
        0, 64, 128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960,
    );
    // SAFETY: lane j reads `blocks.0[j]`, 64 bytes at `j * 64` of the 1 KiB array.
    unsafe { compress_gathered(s, blocks.0.as_ptr().cast(), side) };
}

/// Compresses into lane `j` of `s` the 64 bytes at `base + offsets[j]`.
///
/// # Safety
///
/// For every lane, the 64 bytes from `base + offsets[j]` must be readable.
// The last words the schedule writes are read by no later round (its ring is written out
// round by round, and the lint sees the array as one variable).
#[allow(unused_assignments)]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn compress_gathered(s: &mut [__m512i; 8], base: *const u8, offsets: __m512i) {
    // Each 32-bit word big-endian: its bytes reversed.
    let bswap = _mm512_set4_epi32(0x0c0d_0e0f, 0x0809_0a0b, 0x0405_0607, 0x0001_0203);
    let mut w = [_mm512_setzero_si512(); 16];
    for (t, wt) in w.iter_mut().enumerate() {
        let at = base.wrapping_add(4 * t).cast();
        // SAFETY: word t of lane j is bytes `4t..4t + 4` of the 64 the caller vouches for.
        let g = unsafe { _mm512_i32gather_epi32::<1>(offsets, at) };
        *wt = _mm512_shuffle_epi8(g, bswap);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *s;
    // Word `i` of the message schedule (FIPS 180-4 6.2.2 step 1), kept in a ring of 16; σ0
    // and σ1 (4.6, 4.7). Every index below is a constant once the rounds are written out, so
    // the ring and the state stay in registers.
    macro_rules! schedule {
        ($i:expr) => {{
            let i: usize = $i;
            if i < 16 {
                w[i]
            } else {
                let w15 = w[(i - 15) & 15];
                let w2 = w[(i - 2) & 15];
                let s0 = xor3(
                    _mm512_ror_epi32::<7>(w15),
                    _mm512_ror_epi32::<18>(w15),
                    _mm512_srli_epi32::<3>(w15),
                );
                let s1 = xor3(
                    _mm512_ror_epi32::<17>(w2),
                    _mm512_ror_epi32::<19>(w2),
                    _mm512_srli_epi32::<10>(w2),
                );
                let v = add(add(w[(i - 16) & 15], s0), add(w[(i - 7) & 15], s1));
                w[i & 15] = v;
                v
            }
        }};
    }
    // One round (6.2.2 step 3) with the working variables named in their rotated order: only
    // `d` and `h` get new values. Σ1, Ch (4.2, 4.4), Σ0, Maj (4.3, 4.5).
    macro_rules! round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $i:expr) => {{
            let i: usize = $i;
            let wi = schedule!(i);
            let sigma1 = xor3(
                _mm512_ror_epi32::<6>($e),
                _mm512_ror_epi32::<11>($e),
                _mm512_ror_epi32::<25>($e),
            );
            let ch = _mm512_ternarylogic_epi32::<0xca>($e, $f, $g);
            let t1 = add(
                add($h, sigma1),
                add(ch, add(_mm512_set1_epi32(K[i] as i32), wi)),
            );
            let sigma0 = xor3(
                _mm512_ror_epi32::<2>($a),
                _mm512_ror_epi32::<13>($a),
                _mm512_ror_epi32::<22>($a),
            );
            let maj = _mm512_ternarylogic_epi32::<0xe8>($a, $b, $c);
            $d = add($d, t1);
            $h = add(t1, add(sigma0, maj));
        }};
    }
    macro_rules! eight {
        ($i:expr) => {
            round!(a, b, c, d, e, f, g, h, $i);
            round!(h, a, b, c, d, e, f, g, $i + 1);
            round!(g, h, a, b, c, d, e, f, $i + 2);
            round!(f, g, h, a, b, c, d, e, $i + 3);
            round!(e, f, g, h, a, b, c, d, $i + 4);
            round!(d, e, f, g, h, a, b, c, $i + 5);
            round!(c, d, e, f, g, h, a, b, $i + 6);
            round!(b, c, d, e, f, g, h, a, $i + 7);
        };
    }
    eight!(0);
    eight!(8);
    eight!(16);
    eight!(24);
    eight!(32);
    eight!(40);
    eight!(48);
    eight!(56);
    for (sv, v) in s.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *sv = add(*sv, v);
    }
}

/// `x ^ y ^ z` (truth table 0x96).
#[target_feature(enable = "avx512f")]
fn xor3(x: __m512i, y: __m512i, z: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<0x96>(x, y, z)
}

#[target_feature(enable = "avx512f")]
fn add(x: __m512i, y: __m512i) -> __m512i {
    _mm512_add_epi32(x, y)
}

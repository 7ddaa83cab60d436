//! The x86-64 implementation: SHA-256 compression with the SHA extensions
//! (`sha256rnds2`, `sha256msg1`, `sha256msg2`), two messages interleaved round by round.
//!
//! The algorithm is FIPS 180-4 section 6.2; the instructions' register layout is Intel's
//! (state as the lanes ABEF and CDGH, four message words per register, two rounds per
//! `sha256rnds2` with their `W + K` in the low 64 bits).
//!
//! `unsafe` is allowed in this module only, for the two uses the crate's documentation names.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_extract_epi32, _mm_loadu_si128,
    _mm_set_epi32, _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi32, _mm_shuffle_epi8,
};

use crate::{digest_bytes, last_blocks, Stream, BLOCK, DIGEST_LEN, K};

/// The CPU features every function below is compiled for.
fn detected() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse2")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
}

/// A hash state in the instructions' layout: words (a, b, e, f) and (c, d, g, h), each
/// register's lane 3 holding the first.
#[derive(Clone, Copy)]
struct State {
    abef: __m128i,
    cdgh: __m128i,
}

/// The prefix hashed (its whole blocks' state, in FIPS order and in the instructions'
/// layout, and its last partial block).
#[derive(Clone)]
pub(crate) struct Prefixed {
    prefix: Stream,
    state: State,
}

impl Prefixed {
    /// `None` unless the CPU has the SHA extensions and SSE4.1.
    pub(crate) fn new(prefix: &[u8]) -> Option<Self> {
        if !detected() {
            return None;
        }
        let prefix = Stream::after(prefix);
        // SAFETY: `detected()` just confirmed every feature `to_state` is compiled for.
        let state = unsafe { to_state(&prefix.state) };
        Some(Prefixed { prefix, state })
    }

    /// `[sha256(prefix ‖ a), sha256(prefix ‖ b)]`; the caller checked `a.len() == b.len()`.
    pub(crate) fn digest_pair(&self, a: &[u8], b: &[u8]) -> [[u8; DIGEST_LEN]; 2] {
        // SAFETY: a `Prefixed` exists only after `new` detected every feature `pair` is
        // compiled for.
        unsafe { pair(self, a, b) }
    }

    /// Compresses each of `blocks` into both `a` and `b` (states in FIPS order).
    pub(crate) fn compress_both(&self, a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; BLOCK]]) {
        // SAFETY: a `Prefixed` exists only after `new` detected every feature `both` is
        // compiled for.
        unsafe { both(a, b, blocks) }
    }
}

/// Four words as one register, `w[0]` in lane 0.
#[target_feature(enable = "sse2")]
fn words(w: [u32; 4]) -> __m128i {
    // The `as` casts reinterpret the bits, which is what the lanes hold.
    _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
}

/// Message words `4i..4i+4` of `block`, big-endian as FIPS 180-4 reads them.
#[target_feature(enable = "sse2,ssse3")]
fn load(block: &[u8; BLOCK], i: usize) -> __m128i {
    debug_assert!(i < 4);
    // Reverses the bytes of each 32-bit lane.
    let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let at = &block[16 * (i & 3)..][..16];
    // SAFETY: `at` is 16 readable bytes (a sub-slice of `block`), which is what an unaligned
    // 128-bit load reads.
    let raw = unsafe { _mm_loadu_si128(at.as_ptr().cast::<__m128i>()) };
    _mm_shuffle_epi8(raw, swap)
}

/// `state` from the eight words in FIPS order.
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn to_state(h: &[u32; 8]) -> State {
    let dcba = words([h[0], h[1], h[2], h[3]]);
    let hgfe = words([h[4], h[5], h[6], h[7]]);
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    State {
        abef: _mm_alignr_epi8(cdab, efgh, 8),
        cdgh: _mm_blend_epi16(efgh, cdab, 0xF0),
    }
}

/// The eight words of `state` in FIPS order (the inverse of [`to_state`]).
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn from_state(state: State) -> [u32; 8] {
    let feba = _mm_shuffle_epi32(state.abef, 0x1B);
    let dchg = _mm_shuffle_epi32(state.cdgh, 0xB1);
    let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    let hgfe = _mm_alignr_epi8(dchg, feba, 8);
    // The `as` casts reinterpret the lanes' bits.
    [
        _mm_extract_epi32(dcba, 0) as u32,
        _mm_extract_epi32(dcba, 1) as u32,
        _mm_extract_epi32(dcba, 2) as u32,
        _mm_extract_epi32(dcba, 3) as u32,
        _mm_extract_epi32(hgfe, 0) as u32,
        _mm_extract_epi32(hgfe, 1) as u32,
        _mm_extract_epi32(hgfe, 2) as u32,
        _mm_extract_epi32(hgfe, 3) as u32,
    ]
}

/// The digest of a final `state`.
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn digest(state: State) -> [u8; DIGEST_LEN] {
    digest_bytes(from_state(state))
}

/// The message words of group `$g` of four rounds (`4g..4g+4`) in `$w.$w0`, which held words
/// `4g-16..` (FIPS 180-4 6.2.2 step 1, four words at a time); `$w1`, `$w2`, `$w3` hold words
/// `4g-12..`, `4g-8..`, `4g-4..`. The first four groups' words are the block's own.
macro_rules! next_words {
    ($g:literal, $w:ident, $w0:tt $w1:tt $w2:tt $w3:tt) => {{
        if $g >= 4 {
            // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]: msg1 adds σ0(W[t-15]) to
            // W[t-16], alignr supplies W[t-7], msg2 adds σ1(W[t-2]).
            let x = _mm_sha256msg1_epu32($w.$w0, $w.$w1);
            let x = _mm_add_epi32(x, _mm_alignr_epi8($w.$w3, $w.$w2, 4));
            $w.$w0 = _mm_sha256msg2_epu32(x, $w.$w3);
        }
    }};
}

/// Four rounds (`4g..4g+4`) of both lanes, each over its own message words (`next_words!`).
macro_rules! four_rounds {
    ($g:literal, $a:ident, $b:ident, $wa:ident, $wb:ident, $w0:tt $w1:tt $w2:tt $w3:tt) => {{
        next_words!($g, $wa, $w0 $w1 $w2 $w3);
        next_words!($g, $wb, $w0 $w1 $w2 $w3);
        let k = words([K[4 * $g], K[4 * $g + 1], K[4 * $g + 2], K[4 * $g + 3]]);
        let ka = _mm_add_epi32($wa.$w0, k);
        let kb = _mm_add_epi32($wb.$w0, k);
        // Two rounds with the low words, then two with the high ones; each call returns the
        // new ABEF, and the old ABEF is the new CDGH.
        $a.cdgh = _mm_sha256rnds2_epu32($a.cdgh, $a.abef, ka);
        $b.cdgh = _mm_sha256rnds2_epu32($b.cdgh, $b.abef, kb);
        $a.abef = _mm_sha256rnds2_epu32($a.abef, $a.cdgh, _mm_shuffle_epi32(ka, 0x0E));
        $b.abef = _mm_sha256rnds2_epu32($b.abef, $b.cdgh, _mm_shuffle_epi32(kb, 0x0E));
    }};
}

/// The sixteen groups of four rounds of one compression: `$four!` (`four_rounds!` or
/// `four_rounds_same!`) with its arguments, each group's message words rotated one further.
macro_rules! sixteen_groups {
    ($four:ident, $($arg:ident),+) => {{
        $four!(0, $($arg),+, 0 1 2 3);
        $four!(1, $($arg),+, 1 2 3 0);
        $four!(2, $($arg),+, 2 3 0 1);
        $four!(3, $($arg),+, 3 0 1 2);
        $four!(4, $($arg),+, 0 1 2 3);
        $four!(5, $($arg),+, 1 2 3 0);
        $four!(6, $($arg),+, 2 3 0 1);
        $four!(7, $($arg),+, 3 0 1 2);
        $four!(8, $($arg),+, 0 1 2 3);
        $four!(9, $($arg),+, 1 2 3 0);
        $four!(10, $($arg),+, 2 3 0 1);
        $four!(11, $($arg),+, 3 0 1 2);
        $four!(12, $($arg),+, 0 1 2 3);
        $four!(13, $($arg),+, 1 2 3 0);
        $four!(14, $($arg),+, 2 3 0 1);
        $four!(15, $($arg),+, 3 0 1 2);
    }};
}

/// The first four message-schedule words of `block`.
#[target_feature(enable = "sse2,ssse3")]
fn first_words(block: &[u8; BLOCK]) -> (__m128i, __m128i, __m128i, __m128i) {
    (
        load(block, 0),
        load(block, 1),
        load(block, 2),
        load(block, 3),
    )
}

/// The compression's last step: the state before the block added to the state after it.
#[target_feature(enable = "sse2")]
fn feed_forward(state: &mut State, start: State) {
    state.abef = _mm_add_epi32(state.abef, start.abef);
    state.cdgh = _mm_add_epi32(state.cdgh, start.cdgh);
}

/// One compression of each lane: `a` with `block_a`, `b` with `block_b`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress2(a: &mut State, block_a: &[u8; BLOCK], b: &mut State, block_b: &[u8; BLOCK]) {
    let (start_a, start_b) = (*a, *b);
    let (mut wa, mut wb) = (first_words(block_a), first_words(block_b));
    sixteen_groups!(four_rounds, a, b, wa, wb);
    feed_forward(a, start_a);
    feed_forward(b, start_b);
}

/// Four rounds of two states over one message: its schedule and round-constant sums are
/// computed once for both.
macro_rules! four_rounds_same {
    ($g:literal, $a:ident, $b:ident, $w:ident, $w0:tt $w1:tt $w2:tt $w3:tt) => {{
        next_words!($g, $w, $w0 $w1 $w2 $w3);
        let k = words([K[4 * $g], K[4 * $g + 1], K[4 * $g + 2], K[4 * $g + 3]]);
        let kw = _mm_add_epi32($w.$w0, k);
        let high = _mm_shuffle_epi32(kw, 0x0E);
        $a.cdgh = _mm_sha256rnds2_epu32($a.cdgh, $a.abef, kw);
        $b.cdgh = _mm_sha256rnds2_epu32($b.cdgh, $b.abef, kw);
        $a.abef = _mm_sha256rnds2_epu32($a.abef, $a.cdgh, high);
        $b.abef = _mm_sha256rnds2_epu32($b.abef, $b.cdgh, high);
    }};
}

/// [`compress2`] of one block into two states ([`both`]): the message schedule, which
/// depends only on the block, is computed once, not once per state (on the AMD EPYC of issue
/// 13's stops 12-14, 256 MiB in 128 KiB pieces: 1.54 GB/s per stream against 1.50, five
/// runs each).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_same(a: &mut State, b: &mut State, block: &[u8; BLOCK]) {
    let (start_a, start_b) = (*a, *b);
    let mut w = first_words(block);
    sixteen_groups!(four_rounds_same, a, b, w);
    feed_forward(a, start_a);
    feed_forward(b, start_b);
}

/// Both digests; `a.len() == b.len()`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn pair(p: &Prefixed, a: &[u8], b: &[u8]) -> [[u8; DIGEST_LEN]; 2] {
    debug_assert_eq!(a.len(), b.len());
    let (mut sa, mut sb) = (p.state, p.state);
    let p = &p.prefix;
    let t = p.buffered;
    // The message after the prefix's whole blocks is `tail ‖ data`. If the tail and the data
    // fill a first block, it is put together here; every later block is 64 bytes of the data
    // in place; what remains (with the tail, if no block was filled) goes into the padding.
    let (head, mid_a, mid_b): (&[u8], &[u8], &[u8]) = if t == 0 {
        (&[], a, b)
    } else if t + a.len() >= BLOCK {
        let first = |m: &[u8]| {
            let mut block = [0u8; BLOCK];
            block[..t].copy_from_slice(&p.buf[..t]);
            block[t..].copy_from_slice(&m[..BLOCK - t]);
            block
        };
        compress2(&mut sa, &first(a), &mut sb, &first(b));
        (&[], &a[BLOCK - t..], &b[BLOCK - t..])
    } else {
        // No block is filled: `a` and `b` are shorter than one, all of them is `rest`.
        (&p.buf[..t], a, b)
    };
    let (blocks_a, rest_a) = mid_a.as_chunks::<BLOCK>();
    let (blocks_b, rest_b) = mid_b.as_chunks::<BLOCK>();
    for (block_a, block_b) in blocks_a.iter().zip(blocks_b) {
        compress2(&mut sa, block_a, &mut sb, block_b);
    }
    let len = p.len.wrapping_add(a.len() as u64);
    let (last_a, blocks) = last_blocks(head, rest_a, len);
    let (last_b, _) = last_blocks(head, rest_b, len);
    let (last_a, _) = last_a.as_chunks::<BLOCK>();
    let (last_b, _) = last_b.as_chunks::<BLOCK>();
    for (block_a, block_b) in last_a.iter().zip(last_b).take(blocks) {
        compress2(&mut sa, block_a, &mut sb, block_b);
    }
    [digest(sa), digest(sb)]
}

/// `blocks` compressed into both states, two lanes at a time.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn both(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; BLOCK]]) {
    let (mut sa, mut sb) = (to_state(a), to_state(b));
    for block in blocks {
        compress_same(&mut sa, &mut sb, block);
    }
    *a = from_state(sa);
    *b = from_state(sb);
}

//! SHA-256 of several messages at once, all after the same prefix: dm-verity's
//! `sha256(salt ‖ block)` for two or sixteen blocks in one pass.
//!
//! One SHA-256 stream is bound by the latency of the `sha256rnds2` instruction: each pair of
//! rounds waits for the one before. Two independent messages interleaved round by round keep
//! the unit busy, which on the AMD EPYC machines of this project hashes 4 KiB blocks about 1.3
//! to 1.4 times as fast as the best single-stream code (the `sha2` crate's, which uses the same
//! instructions; only 1.16 times on the Intel Xeon of issue 13's stop 11). The Linux kernel
//! hashes dm-verity and fs-verity blocks the same way (`sha256_finup_2x`).
//!
//! With AVX-512, [`Sha256x16`] hashes sixteen blocks at once without the SHA extensions, one
//! message per 32-bit lane of each register (`x16.rs`): per core for 4 KiB blocks, about 1.9
//! GB/s on that Intel Xeon against 1.35 for two lanes with the SHA extensions, 3.4 against 2.6
//! on an AMD EPYC of family 26 (Zen 5).
//!
//! The SHA instructions also pair two *streams* fed the same bytes ([`Sha256x2::update_both`]
//! on two [`Stream`]s): a data disk's weights are hashed for their pin and, as part of the
//! image file, for the image's sha256, in one pass over them.
//!
//! [`Sha256x2::new`] and [`Sha256x16::new`] return `None` when the CPU lacks what they use (or
//! is not x86-64): callers then hash fewer messages at a time, down to one with any SHA-256.
//! The results are the same bytes.
//!
//! This is the workspace's only crate with `unsafe` code: the intrinsics' loads and gathers
//! take raw pointers, and a function compiled for the SHA extensions or AVX-512 may only be
//! called once they were detected. Both are confined to `x86.rs` and `x16.rs`, each with its
//! reason.

#[cfg(target_arch = "x86_64")]
mod x16;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Length of a SHA-256 digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// SHA-256's block size in bytes.
const BLOCK: usize = 64;

/// FIPS 180-4 5.3.3: the initial hash value.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// FIPS 180-4 4.2.2: the round constants.
#[cfg(target_arch = "x86_64")]
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// A streaming SHA-256 whose state [`Sha256x2::update_both`] can advance together with another
/// one's. Alone it hashes one lane at a time (the `sha2` crate's compression function, which
/// uses the SHA extensions when the CPU has them).
#[derive(Clone)]
pub struct Stream {
    state: [u32; 8],
    /// The last partial block (`buffered` bytes of it).
    buf: [u8; BLOCK],
    buffered: usize,
    /// Bytes hashed so far (SHA-256 counts them modulo 2^64 bits).
    len: u64,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Default for Stream {
    fn default() -> Self {
        Stream::new()
    }
}

impl Stream {
    /// The hash of nothing yet.
    pub fn new() -> Self {
        Stream {
            state: IV,
            buf: [0; BLOCK],
            buffered: 0,
            len: 0,
        }
    }

    /// `prefix` hashed: the state [`Sha256x2`] and [`Sha256x16`] start every message from.
    #[cfg(target_arch = "x86_64")]
    fn after(prefix: &[u8]) -> Self {
        let mut stream = Stream::new();
        stream.update(prefix);
        stream
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hashes `data` after what came before.
    pub fn update(&mut self, mut data: &[u8]) {
        // A slice's length fits in a u64 on every target Rust supports.
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let take = (BLOCK - self.buffered).min(data.len());
            self.buf[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < BLOCK {
                return;
            }
            sha2_compress::block_api::compress256(&mut self.state, &[self.buf]);
            self.buffered = 0;
        }
        let (blocks, rest) = data.as_chunks::<BLOCK>();
        sha2_compress::block_api::compress256(&mut self.state, blocks);
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// The digest of everything hashed.
    pub fn finalize(mut self) -> [u8; DIGEST_LEN] {
        let (last, blocks) = last_blocks(&self.buf[..self.buffered], &[], self.len);
        let (last, _) = last.as_chunks::<BLOCK>();
        sha2_compress::block_api::compress256(&mut self.state, &last[..blocks]);
        digest_bytes(self.state)
    }
}

/// The final block or two of a message of `len` bytes whose last partial block is
/// `head ‖ rest` (together under 64 bytes), and how many of the two to compress. FIPS 180-4
/// 5.1.1: a 1 bit, zeros, and the length in bits as 64 bits, big-endian; lengths in bits are
/// taken modulo 2^64, as SHA-256 defines them.
fn last_blocks(head: &[u8], rest: &[u8], len: u64) -> ([u8; 2 * BLOCK], usize) {
    let mut last = [0u8; 2 * BLOCK];
    let used = head.len() + rest.len();
    last[..head.len()].copy_from_slice(head);
    last[head.len()..used].copy_from_slice(rest);
    last[used] = 0x80;
    let blocks = if used + 1 + 8 <= BLOCK { 1 } else { 2 };
    last[blocks * BLOCK - 8..blocks * BLOCK].copy_from_slice(&len.wrapping_mul(8).to_be_bytes());
    (last, blocks)
}

/// A final state's digest: its words, big-endian.
fn digest_bytes(state: [u32; 8]) -> [u8; DIGEST_LEN] {
    let mut out = [0u8; DIGEST_LEN];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// The two messages given to [`Sha256x2::digest_pair`] differ in length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthMismatch {
    /// The first message's length.
    pub first: usize,
    /// The second message's length.
    pub second: usize,
}

impl std::fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "two-lane SHA-256 needs messages of equal length, got {} and {} bytes",
            self.first, self.second
        )
    }
}

impl std::error::Error for LengthMismatch {}

/// A two-lane SHA-256 hasher with a fixed prefix (hashed once, at construction).
///
/// Holding one is proof that the CPU has the instructions it uses.
#[derive(Clone)]
pub struct Sha256x2 {
    #[cfg(target_arch = "x86_64")]
    inner: x86::Prefixed,
    #[cfg(not(target_arch = "x86_64"))]
    inner: std::convert::Infallible,
}

impl std::fmt::Debug for Sha256x2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256x2").finish_non_exhaustive()
    }
}

impl Sha256x2 {
    /// A hasher for messages that start with `prefix`, or `None` when this CPU cannot run
    /// it (no SHA extensions, or not x86-64).
    pub fn new(prefix: &[u8]) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            x86::Prefixed::new(prefix).map(|inner| Sha256x2 { inner })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = prefix;
            None
        }
    }

    /// Hashes the same `data` into both streams (the hasher's prefix plays no part): their
    /// whole blocks two lanes at a time when both streams are at a block boundary, as when
    /// two streams meet at a 64-byte-aligned offset of both, else one lane at a time. Either
    /// way `a` and `b` end as if each had been given `data` by [`Stream::update`].
    pub fn update_both(&self, a: &mut Stream, b: &mut Stream, data: &[u8]) {
        if a.buffered != 0 || b.buffered != 0 {
            a.update(data);
            b.update(data);
            return;
        }
        let (blocks, rest) = data.as_chunks::<BLOCK>();
        #[cfg(target_arch = "x86_64")]
        self.inner.compress_both(&mut a.state, &mut b.state, blocks);
        #[cfg(not(target_arch = "x86_64"))]
        match self.inner {}
        let whole = (blocks.len() * BLOCK) as u64;
        a.len = a.len.wrapping_add(whole);
        b.len = b.len.wrapping_add(whole);
        a.update(rest);
        b.update(rest);
    }

    /// `[sha256(prefix ‖ a), sha256(prefix ‖ b)]`. The messages must have the same length.
    pub fn digest_pair(&self, a: &[u8], b: &[u8]) -> Result<[[u8; DIGEST_LEN]; 2], LengthMismatch> {
        if a.len() != b.len() {
            return Err(LengthMismatch {
                first: a.len(),
                second: b.len(),
            });
        }
        #[cfg(target_arch = "x86_64")]
        {
            Ok(self.inner.digest_pair(a, b))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            // `new` never returns a hasher here: the type is uninhabited.
            match self.inner {}
        }
    }
}

/// The data and output given to [`Sha256x16::digest16`] are not sixteen equal parts of at
/// most [`Sha256x16::MAX_PART`] bytes and sixteen digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The data's length.
    pub data: usize,
    /// The output's length.
    pub out: usize,
}

impl std::fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sixteen-lane SHA-256 needs data in 16 equal parts of at most {} bytes and {} bytes \
             of output, got {} and {} bytes",
            Sha256x16::MAX_PART,
            Sha256x16::LANES * DIGEST_LEN,
            self.data,
            self.out
        )
    }
}

impl std::error::Error for ShapeMismatch {}

/// A sixteen-lane SHA-256 hasher with a fixed prefix: `sha256(prefix ‖ m)` of sixteen
/// equal-length messages lying one after another in memory (sixteen consecutive dm-verity data
/// blocks), with AVX-512 (no SHA extensions needed). Which of it and [`Sha256x2`] is faster
/// depends on the CPU, so callers that have both measure: it hashes 4 KiB blocks about 1.4
/// times as fast per core as [`Sha256x2`] on the Intel Xeon of issue 13, 1.3 times on an AMD
/// EPYC of family 26 (Zen 5); where 512-bit operations run as two halves it may be slower.
///
/// Holding one is proof that the CPU has the instructions it uses.
#[derive(Clone)]
pub struct Sha256x16 {
    #[cfg(target_arch = "x86_64")]
    inner: x16::Prefixed16,
    #[cfg(not(target_arch = "x86_64"))]
    inner: std::convert::Infallible,
}

impl std::fmt::Debug for Sha256x16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256x16").finish_non_exhaustive()
    }
}

impl Sha256x16 {
    /// Messages per call.
    pub const LANES: usize = 16;
    /// The longest message (the sixteen offsets are 32-bit).
    pub const MAX_PART: usize = (i32::MAX as usize) / 16;

    /// A hasher for messages that start with `prefix`, or `None` when this CPU cannot run it
    /// (no AVX-512 F and BW, or not x86-64).
    pub fn new(prefix: &[u8]) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            x16::Prefixed16::new(prefix).map(|inner| Sha256x16 { inner })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = prefix;
            None
        }
    }

    /// `sha256(prefix ‖ m)` of each of the sixteen equal parts `m` of `data`, in order, into
    /// the sixteen consecutive 32-byte slots of `out`.
    pub fn digest16(&self, data: &[u8], out: &mut [u8]) -> Result<(), ShapeMismatch> {
        if !data.len().is_multiple_of(Self::LANES)
            || data.len() / Self::LANES > Self::MAX_PART
            || out.len() != Self::LANES * DIGEST_LEN
        {
            return Err(ShapeMismatch {
                data: data.len(),
                out: out.len(),
            });
        }
        #[cfg(target_arch = "x86_64")]
        {
            self.inner.digest16(data, out);
            Ok(())
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            // `new` never returns a hasher here: the type is uninhabited.
            match self.inner {}
        }
    }
}

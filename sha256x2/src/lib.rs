//! SHA-256 of two equal-length messages at once, both after the same prefix: dm-verity's
//! `sha256(salt ‖ block)` for two blocks in one pass.
//!
//! One SHA-256 stream is bound by the latency of the `sha256rnds2` instruction: each pair of
//! rounds waits for the one before. Two independent messages interleaved round by round keep
//! the unit busy, which on this project's machines (AMD EPYC, SHA extensions) hashes 4 KiB
//! blocks about 1.4 times as fast as the best single-stream code (the `sha2` crate's, which
//! uses the same instructions). The Linux kernel hashes dm-verity and fs-verity blocks the
//! same way (`sha256_finup_2x`).
//!
//! The same instructions pair two *streams* fed the same bytes ([`Sha256x2::update_both`] on
//! two [`Stream`]s): a data disk's weights are hashed for their pin and, as part of the image
//! file, for the image's sha256, in one pass over them.
//!
//! [`Sha256x2::new`] returns `None` when the CPU lacks the SHA extensions (or is not x86-64):
//! callers then hash one message at a time with any SHA-256. The results are the same bytes.
//!
//! This is the workspace's only crate with `unsafe` code: the intrinsics' loads take raw
//! pointers, and a function compiled for the SHA extensions may only be called once they were
//! detected. Both are confined to `x86.rs`, each with its reason.

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

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

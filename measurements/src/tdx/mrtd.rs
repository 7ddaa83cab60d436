//! MRTD: the SHA-384 the TDX module accumulates over `TDH.MEM.PAGE.ADD` and `TDH.MR.EXTEND`
//! while the VMM builds the TD (Intel TDX Module Base Architecture spec, "MRTD").
//!
//! Each `TDH.MEM.PAGE.ADD` hashes a 128-byte block: `"MEM.PAGE.ADD"` zero-padded to 16 bytes,
//! the page GPA as `u64` LE at offset 16, zeros to 128. Each `TDH.MR.EXTEND` hashes a 128-byte
//! block `"MR.EXTEND"` with the chunk GPA at offset 16, then the 256 bytes of the chunk. The
//! stream is finalised once, by `TDH.MR.FINALIZE`.

use sha2::Digest as _;

use super::tdvf::{Tdvf, PAGE_SIZE};
use crate::Sha384Digest;

/// Bytes measured per `TDH.MR.EXTEND`.
const EXTEND_CHUNK: u64 = 256;

/// The order in which the VMM issues page adds and extends; it depends on the QEMU/KVM build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PageAddOrder {
    /// Per page: `PAGE.ADD`, then the page's 16 `MR.EXTEND`s (upstream QEMU ≥ 9 with upstream
    /// KVM, and pre-v19 TDX patches).
    #[default]
    SinglePass,
    /// Per section: all `PAGE.ADD`s, then all `MR.EXTEND`s (Intel "upstream-v5" and Canonical
    /// QEMU 8.2.x; tdx-measure `--two-pass-add-pages`).
    TwoPass,
}

/// The MRTD hash stream. Typestate by ownership: [`finish`](Mrtd::finish) consumes it, so the
/// digest cannot be read mid-build or extended afterwards.
#[derive(Debug, Clone, Default)]
pub struct Mrtd {
    hasher: sha2::Sha384,
}

impl Mrtd {
    /// An empty MRTD stream (a freshly created TD).
    pub fn new() -> Self {
        Self::default()
    }

    /// `TDH.MEM.PAGE.ADD` of the page at `gpa`.
    pub fn page_add(&mut self, gpa: u64) {
        self.hasher.update(block(b"MEM.PAGE.ADD", gpa));
    }

    /// `TDH.MR.EXTEND` of the 256-byte `chunk` at `gpa`.
    pub fn mr_extend(&mut self, gpa: u64, chunk: &[u8; 256]) {
        self.hasher.update(block(b"MR.EXTEND", gpa));
        self.hasher.update(chunk);
    }

    /// `TDH.MR.FINALIZE`: the MRTD value.
    pub fn finish(self) -> Sha384Digest {
        Sha384Digest(self.hasher.finalize().into())
    }
}

fn block(op: &[u8], gpa: u64) -> [u8; 128] {
    let mut b = [0u8; 128];
    // Both operation names are shorter than 16 bytes.
    b[..op.len()].copy_from_slice(op);
    b[16..24].copy_from_slice(&gpa.to_le_bytes());
    b
}

/// MRTD of a TD built from the TDVF sections of `tdvf`, in metadata order. Pages of `PAGE_AUG`
/// sections are not added; only `MR_EXTEND` sections have their content measured.
pub fn mrtd(tdvf: &Tdvf<'_>, order: PageAddOrder) -> Sha384Digest {
    let mut m = Mrtd::new();
    for s in tdvf.sections() {
        let add = |m: &mut Mrtd, page: u64| {
            if !s.page_aug {
                m.page_add(s.memory_address + page * PAGE_SIZE);
            }
        };
        let extend = |m: &mut Mrtd, page: u64| {
            if s.mr_extend {
                for i in 0..PAGE_SIZE / EXTEND_CHUNK {
                    let off = page * PAGE_SIZE + i * EXTEND_CHUNK;
                    m.mr_extend(s.memory_address + off, &tdvf.chunk(s, off));
                }
            }
        };
        match order {
            PageAddOrder::SinglePass => {
                for page in 0..s.pages() {
                    add(&mut m, page);
                    extend(&mut m, page);
                }
            }
            PageAddOrder::TwoPass => {
                for page in 0..s.pages() {
                    add(&mut m, page);
                }
                for page in 0..s.pages() {
                    extend(&mut m, page);
                }
            }
        }
    }
    m.finish()
}

//! The SNP guest context: the launch digest as the PSP extends it on each `SNP_LAUNCH_UPDATE`.
//!
//! A [`Gctx<Updating>`] accepts page updates; [`Gctx::finish`] turns it into a
//! [`Gctx<Completed>`], whose digest can be read but not extended (STYLE 12).

use core::fmt;
use core::marker::PhantomData;

use sha2::{Digest as _, Sha384};

use super::ovmf::PAGE_SIZE;
use crate::Sha384Digest;

/// KVM records VMSA pages in the RMP at GPA `(u64)-1`, page-aligned with bits above 51 clear.
pub const VMSA_GPA: u64 = 0x0000_FFFF_FFFF_F000;

/// The `PAGE_TYPE` field of `PAGE_INFO` (SNP firmware ABI, `SNP_LAUNCH_UPDATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PageType {
    /// 1: measured page contents.
    Normal = 1,
    /// 2: a vCPU save area, measured.
    Vmsa = 2,
    /// 3: zero page; contents not measured.
    Zero = 3,
    /// 4: unmeasured page.
    Unmeasured = 4,
    /// 5: the secrets page.
    Secrets = 5,
    /// 6: the CPUID page.
    Cpuid = 6,
}

impl PageType {
    /// Upper-case name used in transcripts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Vmsa => "VMSA",
            Self::Zero => "ZERO",
            Self::Unmeasured => "UNMEASURED",
            Self::Secrets => "SECRETS",
            Self::Cpuid => "CPUID",
        }
    }
}

/// A length that is not a whole number of pages was passed to a page update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GctxError {
    /// `len` bytes at `gpa` are not whole 4 KiB pages.
    #[error("{label}: {len} bytes at GPA {gpa:#x} is not a multiple of 4096")]
    NotPages {
        /// What was being measured.
        label: String,
        /// Start GPA.
        gpa: u64,
        /// Length in bytes.
        len: u64,
    },
    /// The GPA range wraps around 2^64.
    #[error("{label}: GPA range at {gpa:#x} overflows")]
    GpaOverflow {
        /// What was being measured.
        label: String,
        /// Start GPA.
        gpa: u64,
    },
}

/// Typestate: the digest may still be extended.
#[derive(Debug)]
pub struct Updating;
/// Typestate: the digest is final.
#[derive(Debug)]
pub struct Completed;

/// The guest context launch digest accumulator.
#[derive(Debug)]
pub struct Gctx<S> {
    ld: [u8; 48],
    transcript: Option<Transcript>,
    _state: PhantomData<S>,
}

impl Default for Gctx<Updating> {
    fn default() -> Self {
        Self::new()
    }
}

impl Gctx<Updating> {
    /// A context whose digest starts at 48 zero bytes.
    pub fn new() -> Self {
        Self::with_seed(Sha384Digest([0; 48]))
    }

    /// A context that starts from a precomputed digest, e.g. an OVMF hash.
    pub fn with_seed(seed: Sha384Digest) -> Self {
        Self {
            ld: seed.0,
            transcript: None,
            _state: PhantomData,
        }
    }

    /// Records every page group measured from now on in a [`Transcript`].
    pub fn recording(mut self) -> Self {
        self.transcript = Some(Transcript {
            seed: Sha384Digest(self.ld),
            entries: Vec::new(),
        });
        self
    }

    /// Measures `data` as NORMAL pages at ascending GPAs from `gpa`.
    pub fn update_normal_pages(
        &mut self,
        label: &str,
        gpa: u64,
        data: &[u8],
    ) -> Result<(), GctxError> {
        let len = data.len() as u64;
        check_range(label, gpa, len)?;
        let mut at = gpa;
        for page in data.chunks_exact(PAGE_SIZE) {
            self.update(PageType::Normal, at, &Sha384::digest(page).into());
            at += PAGE_SIZE as u64;
        }
        let contents = self.transcript.is_some().then(|| Sha384Digest::of(data));
        self.record(label, PageType::Normal, gpa, len, contents);
        Ok(())
    }

    /// Measures one VMSA page (at [`VMSA_GPA`]).
    pub fn update_vmsa_page(&mut self, label: &str, page: &[u8; PAGE_SIZE]) {
        let contents: [u8; 48] = Sha384::digest(page).into();
        self.update(PageType::Vmsa, VMSA_GPA, &contents);
        self.record(
            label,
            PageType::Vmsa,
            VMSA_GPA,
            PAGE_SIZE as u64,
            Some(Sha384Digest(contents)),
        );
    }

    /// Records `len` bytes at `gpa` as ZERO pages.
    pub fn update_zero_pages(&mut self, label: &str, gpa: u64, len: u64) -> Result<(), GctxError> {
        self.update_unhashed(label, PageType::Zero, gpa, len)
    }

    /// Records `len` bytes at `gpa` as UNMEASURED pages.
    pub fn update_unmeasured_pages(
        &mut self,
        label: &str,
        gpa: u64,
        len: u64,
    ) -> Result<(), GctxError> {
        self.update_unhashed(label, PageType::Unmeasured, gpa, len)
    }

    /// Records the secrets page at `gpa`.
    pub fn update_secrets_page(&mut self, label: &str, gpa: u64) {
        self.update(PageType::Secrets, gpa, &[0; 48]);
        self.record(label, PageType::Secrets, gpa, PAGE_SIZE as u64, None);
    }

    /// Records the CPUID page at `gpa`.
    pub fn update_cpuid_page(&mut self, label: &str, gpa: u64) {
        self.update(PageType::Cpuid, gpa, &[0; 48]);
        self.record(label, PageType::Cpuid, gpa, PAGE_SIZE as u64, None);
    }

    /// Ends the launch: the digest can now be read and no longer extended.
    pub fn finish(self) -> Gctx<Completed> {
        Gctx {
            ld: self.ld,
            transcript: self.transcript,
            _state: PhantomData,
        }
    }

    fn update_unhashed(
        &mut self,
        label: &str,
        kind: PageType,
        gpa: u64,
        len: u64,
    ) -> Result<(), GctxError> {
        check_range(label, gpa, len)?;
        let mut at = gpa;
        for _ in 0..len / PAGE_SIZE as u64 {
            self.update(kind, at, &[0; 48]);
            at += PAGE_SIZE as u64;
        }
        self.record(label, kind, gpa, len, None);
        Ok(())
    }

    /// `LD = SHA-384(PAGE_INFO)` with PAGE_INFO laid out as in the SNP ABI (0x70 bytes).
    fn update(&mut self, kind: PageType, gpa: u64, contents: &[u8; 48]) {
        let mut info = [0u8; 0x70];
        info[..0x30].copy_from_slice(&self.ld);
        info[0x30..0x60].copy_from_slice(contents);
        info[0x60..0x62].copy_from_slice(&0x70u16.to_le_bytes());
        info[0x62] = kind as u8;
        // 0x63 IMI_PAGE, 0x64..0x67 VMPL3..1 permissions and reserved: all zero.
        info[0x68..0x70].copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::digest(info).into();
    }

    fn record(
        &mut self,
        label: &str,
        kind: PageType,
        gpa: u64,
        len: u64,
        contents: Option<Sha384Digest>,
    ) {
        let ld = Sha384Digest(self.ld);
        if let Some(t) = &mut self.transcript {
            t.entries.push(TranscriptEntry {
                label: label.to_owned(),
                page_type: kind,
                gpa,
                pages: len / PAGE_SIZE as u64,
                contents,
                digest_after: ld,
            });
        }
    }
}

impl Gctx<Completed> {
    /// The final launch digest (`MEASUREMENT` in the attestation report).
    pub fn launch_digest(&self) -> Sha384Digest {
        Sha384Digest(self.ld)
    }

    /// The transcript, if the context was [`recording`](Gctx::recording).
    pub fn transcript(&self) -> Option<&Transcript> {
        self.transcript.as_ref()
    }
}

fn check_range(label: &str, gpa: u64, len: u64) -> Result<(), GctxError> {
    if !len.is_multiple_of(PAGE_SIZE as u64) {
        return Err(GctxError::NotPages {
            label: label.to_owned(),
            gpa,
            len,
        });
    }
    gpa.checked_add(len).ok_or(GctxError::GpaOverflow {
        label: label.to_owned(),
        gpa,
    })?;
    Ok(())
}

/// A log of every page group measured, to explain a digest mismatch step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The digest before the first update (zero, or a precomputed OVMF hash).
    pub seed: Sha384Digest,
    /// The groups in measurement order.
    pub entries: Vec<TranscriptEntry>,
}

/// One group of consecutive pages of one type measured together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptEntry {
    /// What the pages are (`firmware`, `metadata[2] SNP_SECRETS`, `VMSA vcpu 0 (BSP)`, …).
    pub label: String,
    /// Their page type.
    pub page_type: PageType,
    /// GPA of the first page.
    pub gpa: u64,
    /// Number of pages (one PAGE_INFO update each).
    pub pages: u64,
    /// For NORMAL and VMSA groups, SHA-384 of the group's bytes (for a single page this is the
    /// PAGE_INFO `CONTENTS` field); `None` for types whose contents are not measured.
    pub contents: Option<Sha384Digest>,
    /// The launch digest after the group's last page.
    pub digest_after: Sha384Digest,
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {}", self.seed)?;
        for (i, e) in self.entries.iter().enumerate() {
            let end = e
                .gpa
                .saturating_add(e.pages.saturating_mul(PAGE_SIZE as u64));
            writeln!(f, "#{i} {} ({})", e.label, e.page_type.name())?;
            writeln!(f, "   gpa {:#014x}..{end:#014x} pages {}", e.gpa, e.pages)?;
            if let Some(c) = &e.contents {
                writeln!(f, "   contents {c}")?;
            }
            writeln!(f, "   ld {}", e.digest_after)?;
        }
        Ok(())
    }
}

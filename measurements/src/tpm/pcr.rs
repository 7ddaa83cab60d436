//! PCR banks and the extend operation, shared by the vTPM PCRs and the TDX RTMRs.
//!
//! A register starts at all zeros and is only ever updated as
//! `value = H(value ‖ event_digest)` (TCG PC Client Platform Firmware Profile, §2.3.4;
//! Intel TDX Module spec, `TDG.MR.RTMR.EXTEND`). [`Register`] models exactly that: it can be
//! extended and read, never set.

use sha2::Digest as _;

use crate::{Sha256Digest, Sha384Digest};

/// A hash algorithm a register bank uses, identified by its digest type.
///
/// Implemented for [`Sha256Digest`] (the TPM `sha256` bank) and [`Sha384Digest`] (the TPM
/// `sha384` bank and the TDX RTMRs).
pub trait Bank: Copy + Eq + core::fmt::Debug + core::fmt::Display {
    /// The bank's name as systemd-measure and the TCG spec spell it (`sha256`, `sha384`).
    const NAME: &'static str;
    /// The all-zero digest a register starts from.
    const ZERO: Self;
    /// The digest of the concatenation of `parts`.
    fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self;
    /// The raw bytes of the digest.
    fn bytes(&self) -> &[u8];
    /// The digest of `data`.
    fn hash(data: &[u8]) -> Self {
        Self::hash_parts([data])
    }
}

impl Bank for Sha256Digest {
    const NAME: &'static str = "sha256";
    const ZERO: Self = Sha256Digest([0; 32]);
    fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update(p);
        }
        Sha256Digest(h.finalize().into())
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Bank for Sha384Digest {
    const NAME: &'static str = "sha384";
    const ZERO: Self = Sha384Digest([0; 48]);
    fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut h = sha2::Sha384::new();
        for p in parts {
            h.update(p);
        }
        Sha384Digest(h.finalize().into())
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A measurement register (PCR or RTMR) of bank `D`: starts at zero, changes only by
/// [`extend`](Register::extend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register<D: Bank> {
    value: D,
}

impl<D: Bank> Register<D> {
    /// A register after reset: all zero bytes.
    pub fn new() -> Self {
        Self { value: D::ZERO }
    }

    /// `value = H(value ‖ event_digest)`.
    pub fn extend(&mut self, event_digest: &D) {
        self.value = D::hash_parts([self.value.bytes(), event_digest.bytes()]);
    }

    /// Extends with `H(data)`: what firmware does for an event whose digest is over its data.
    pub fn extend_data(&mut self, data: &[u8]) {
        self.extend(&D::hash(data));
    }

    /// The current value, as a quote or `TDREPORT` would show it.
    pub fn value(&self) -> D {
        self.value
    }
}

impl<D: Bank> Default for Register<D> {
    fn default() -> Self {
        Self::new()
    }
}

/// One measured event: what it stands for and the digest extended into the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<D: Bank> {
    /// A short human-readable description (for transcripts; not measured).
    pub description: String,
    /// The digest extended into the register.
    pub digest: D,
}

impl<D: Bank> Event<D> {
    /// An event whose digest is `H(data)`.
    pub fn of_data(description: impl Into<String>, data: &[u8]) -> Self {
        Self {
            description: description.into(),
            digest: D::hash(data),
        }
    }
}

/// The register value after extending `events`, in order, from zero.
pub fn replay<D: Bank>(events: &[Event<D>]) -> D {
    let mut r = Register::<D>::new();
    for e in events {
        r.extend(&e.digest);
    }
    r.value()
}

/// The TCG `EV_SEPARATOR` event data: four zero bytes.
pub const SEPARATOR: [u8; 4] = [0; 4];

/// The `EV_EFI_ACTION` string edk2 logs to PCR 4 (RTMR1) before starting a boot option.
pub const CALLING_EFI_APPLICATION: &[u8] = b"Calling EFI Application from Boot Option";

//! [`VtpmQuote`]: evidence from a (virtual) TPM 2.0, for guests whose boot is measured into
//! PCRs rather than by a TEE's launch digest (QEMU + swtpm, cloud vTPMs).
//!
//! For each binding: `TPM2_CreatePrimary` of the attestation key ([`tpm2::ak_template`],
//! endorsement hierarchy by default: the same key every time on the same TPM), `TPM2_Quote`
//! of the SHA-256 PCRs (4 and 11 by default) with the binding's first 32 bytes as qualifying
//! data ([`verifier::binding::tpm_qualifying_data`]), `TPM2_FlushContext` of the key.
//!
//! How the three pieces travel in an [`Evidence`] (and so in the attestation document, each
//! base64):
//!
//! | where | what | `attest check` flag |
//! |---|---|---|
//! | `evidence` | `TPMS_ATTEST` (the `TPM2B_ATTEST`'s contents): the signed bytes | `--evidence` |
//! | `certificates["tpm-signature"]` | `TPMT_SIGNATURE` | `--signature` |
//! | `certificates["tpm-ak"]` | the AK's public key, `SubjectPublicKeyInfo` DER | `--ak` |
//!
//! The AK travels for convenience only: a client must compare it with an AK it trusts
//! (pinned from an EK certificate chain, or the cloud provider's API), never take it from the
//! server.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::evidence::{Evidence, EvidenceError, EvidenceSource, Platform};
use crate::tpm2::{self, Hierarchy, PcrSelection, Tpm};

/// The name of the `TPMT_SIGNATURE` among [`Evidence::certificates`].
pub const TPM_SIGNATURE: &str = "tpm-signature";
/// The name of the AK's `SubjectPublicKeyInfo` DER among [`Evidence::certificates`].
pub const TPM_AK: &str = "tpm-ak";

/// TPM quotes over a TPM device (`/dev/tpmrm0`) or any other byte stream to a TPM.
#[derive(Debug)]
pub struct VtpmQuote<D = fs_err::File> {
    /// One command exchange at a time.
    tpm: Mutex<Tpm<D>>,
    pcrs: PcrSelection,
    hierarchy: Hierarchy,
}

impl VtpmQuote<fs_err::File> {
    /// The kernel's TPM device with its resource manager (each open file has its own
    /// transient handles, flushed when it closes).
    pub const DEFAULT_PATH: &'static str = "/dev/tpmrm0";

    /// Opens the TPM device at `path`, read and write.
    pub fn open(path: &Path) -> Result<Self, EvidenceError> {
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| EvidenceError::Device {
                path: PathBuf::from(path),
                source,
            })?;
        Ok(Self::new(file))
    }
}

impl<D: Read + Write> VtpmQuote<D> {
    /// Quotes through `device`, of PCR 4 and 11, with an AK under the endorsement hierarchy.
    pub fn new(device: D) -> Self {
        Self {
            tpm: Mutex::new(Tpm::new(device)),
            pcrs: PcrSelection::default(),
            hierarchy: Hierarchy::default(),
        }
    }

    /// Quotes `pcrs` instead (the verifier expects exactly the record's 4 and 11 plus the
    /// PCRs it is given values for).
    #[must_use]
    pub fn with_pcrs(mut self, pcrs: PcrSelection) -> Self {
        self.pcrs = pcrs;
        self
    }

    /// Creates the AK under `hierarchy` instead.
    #[must_use]
    pub fn with_hierarchy(mut self, hierarchy: Hierarchy) -> Self {
        self.hierarchy = hierarchy;
        self
    }

    /// The AK's public key (`SubjectPublicKeyInfo` DER), to pin or to certify.
    pub fn ak_spki_der(&self) -> Result<Vec<u8>, EvidenceError> {
        let mut tpm = self.lock();
        let key = tpm.create_ak(self.hierarchy)?;
        tpm.flush(key.handle)?;
        Ok(key.spki_der)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tpm<D>> {
        // A poisoned lock only means another request panicked between commands; every
        // exchange is a whole command and a whole response, so the stream is still in step.
        self.tpm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<D: Read + Write + Send> EvidenceSource for VtpmQuote<D> {
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, EvidenceError> {
        let qualifying = verifier::binding::tpm_qualifying_data(report_data);
        let mut tpm = self.lock();
        let key = tpm.create_ak(self.hierarchy)?;
        let quote = tpm.quote(key.handle, &qualifying, &self.pcrs);
        // Flush whether or not the quote worked; a failed quote's error comes first.
        let flushed = tpm.flush(key.handle);
        let quote = quote?;
        flushed?;
        Ok(Evidence {
            platform: Platform::Tpm,
            evidence: quote.attest,
            certificates: [
                (TPM_SIGNATURE.to_owned(), quote.signature),
                (TPM_AK.to_owned(), key.spki_der),
            ]
            .into(),
        })
    }
}

impl From<tpm2::Tpm2Error> for EvidenceError {
    fn from(e: tpm2::Tpm2Error) -> Self {
        EvidenceError::Tpm(e)
    }
}

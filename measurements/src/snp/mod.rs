//! AMD SEV-SNP (and SEV, SEV-ES) launch digests for QEMU/KVM, EC2 and GCE guests booting OVMF.
//!
//! The SNP digest is a chain of SHA-384 `PAGE_INFO` updates ([`Gctx`]) in this order:
//!
//! 1. the whole firmware image as NORMAL pages ending at 4 GiB — the result is the
//!    *OVMF hash* ([`ovmf_hash`]), which may also be given precomputed;
//! 2. each SEV metadata [`Section`] of the firmware, in table order (ZERO, SECRETS, CPUID,
//!    UNMEASURED pages, and the [`KernelHashes`] page for measured direct boot);
//! 3. one VMSA page per vCPU: the BSP, then the APs starting at the `SEV_ES_RESET_BLOCK` EIP.
//!
//! This follows sev-snp-measure 0.0.13, which the tests run as the oracle.
//!
//! ```
//! use measurements::snp::Gctx;
//! // A context measures pages, then is finished; only then can the digest be read.
//! let mut gctx = Gctx::new();
//! gctx.update_zero_pages("example", 0x80_0000, 4096).unwrap();
//! let digest = gctx.finish().launch_digest();
//! assert_eq!(digest.to_hex().len(), 96);
//! ```

mod cpu;
mod gctx;
mod hashes;
mod ovmf;
mod vmsa;

use core::num::NonZeroU32;

use sha2::{Digest as _, Sha256};

pub use cpu::{CpuSignature, UnknownVcpuType, VcpuType};
pub use gctx::{
    Completed, Gctx, GctxError, PageType, Transcript, TranscriptEntry, Updating, VMSA_GPA,
};
pub use hashes::{KernelHashes, PADDED_TABLE_LEN};
pub use ovmf::{Firmware, FirmwareError, HashTableLocation, Section, SectionType};
pub use vmsa::{vmsa_page, Vmm, BSP_EIP};

use crate::{Sha256Digest, Sha384Digest};

/// `SEV_FEATURES` bit 0: SNP active. The default guest features.
pub const SNP_ACTIVE: u64 = 0x1;

/// What an SNP launch digest depends on besides the firmware.
#[derive(Debug, Clone)]
pub struct SnpInputs<'a> {
    /// The parsed OVMF image.
    pub firmware: &'a Firmware<'a>,
    /// A precomputed [`ovmf_hash`] to start from instead of hashing the firmware pages. The
    /// firmware is still used for its metadata sections and reset EIP.
    pub ovmf_hash: Option<Sha384Digest>,
    /// The hashes table for measured direct boot (`-kernel`, `kernel-hashes=on`); `None`
    /// leaves the kernel-hashes section as ZERO pages.
    pub kernel_hashes: Option<KernelHashes>,
    /// Number of vCPUs (one VMSA page each).
    pub vcpus: NonZeroU32,
    /// The hypervisor, and for QEMU the vCPU signature.
    pub vmm: Vmm,
    /// The VMSA `SEV_FEATURES` value: [`SNP_ACTIVE`] (0x1) by default; 0x21 when the host's
    /// `kvm_amd` has `debug_swap` enabled.
    pub guest_features: u64,
}

/// Why a launch digest cannot be computed for a well-formed firmware image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnpError {
    /// The firmware has no `SEV_ES_RESET_BLOCK` entry, so the AP start address is unknown.
    #[error("firmware has no SEV_ES_RESET_BLOCK entry (not an SEV-ES/SNP capable OVMF)")]
    MissingResetBlock,
    /// The firmware's AP reset EIP is 0 but there are several vCPUs.
    #[error("firmware's SEV_ES_RESET_BLOCK EIP is 0; cannot start {vcpus} vCPUs")]
    NoApResetEip {
        /// Requested vCPUs.
        vcpus: u32,
    },
    /// Kernel hashes were requested but the firmware cannot check them: in SNP mode it has no
    /// `SNP_KERNEL_HASHES` metadata section, in SEV/SEV-ES mode no non-zero
    /// `SEV_HASH_TABLE_RV` entry. (sev-snp-measure refuses too.)
    #[error("kernel hashes requested but the firmware does not support measured direct boot ({missing} missing); use the AmdSev OVMF build")]
    KernelHashesUnsupported {
        /// What the firmware lacks.
        missing: &'static str,
    },
    /// The `SNP_KERNEL_HASHES` section is not exactly one page.
    #[error("SNP_KERNEL_HASHES section at GPA {gpa:#x} is {size:#x} bytes, expected one page")]
    KernelHashesSectionSize {
        /// Section GPA.
        gpa: u32,
        /// Section size.
        size: u32,
    },
    /// The hashes table would cross the end of its page.
    #[error("SEV hashes table at GPA {gpa:#x} does not fit in its page")]
    HashTableCrossesPage {
        /// Table GPA.
        gpa: u32,
    },
    /// A page update was malformed.
    #[error(transparent)]
    Gctx(#[from] GctxError),
}

/// The digest after measuring only the firmware pages (`sev-snp-measure --mode snp:ovmf-hash`).
pub fn ovmf_hash(firmware: &Firmware<'_>) -> Sha384Digest {
    measure_ovmf(firmware, false).launch_digest()
}

/// Measures only the firmware pages, optionally recording a transcript.
pub fn measure_ovmf(firmware: &Firmware<'_>, record: bool) -> Gctx<Completed> {
    let mut gctx = start(record, None);
    // `Firmware::parse` checked the image is whole pages ending at 4 GiB, so this cannot fail.
    let _ = gctx.update_normal_pages("firmware", firmware.gpa(), firmware.data());
    gctx.finish()
}

/// The SNP launch digest.
pub fn snp_launch_digest(inputs: &SnpInputs<'_>) -> Result<Sha384Digest, SnpError> {
    Ok(snp_launch(inputs, false)?.launch_digest())
}

/// The SNP launch as a finished [`Gctx`], with a [`Transcript`] if `record` is set.
pub fn snp_launch(inputs: &SnpInputs<'_>, record: bool) -> Result<Gctx<Completed>, SnpError> {
    let fw = inputs.firmware;
    let ap_eip = ap_reset_eip(fw, inputs.vcpus)?;
    if inputs.kernel_hashes.is_some() && !fw.has_section(SectionType::SnpKernelHashes) {
        return Err(SnpError::KernelHashesUnsupported {
            missing: "SNP_KERNEL_HASHES section",
        });
    }

    let mut gctx = start(record, inputs.ovmf_hash);
    if inputs.ovmf_hash.is_none() {
        gctx.update_normal_pages("firmware", fw.gpa(), fw.data())?;
    }
    for (i, s) in fw.sections().iter().enumerate() {
        let label = format!("metadata[{i}] {}", s.kind.name());
        let (gpa, size) = (u64::from(s.gpa), u64::from(s.size));
        match s.kind {
            SectionType::SnpSecMem if inputs.vmm == Vmm::Gce => {
                gctx.update_unmeasured_pages(&label, gpa, size)?
            }
            SectionType::SnpSecMem | SectionType::SvsmCaa => {
                gctx.update_zero_pages(&label, gpa, size)?
            }
            SectionType::SnpSecrets => gctx.update_secrets_page(&label, gpa),
            SectionType::Cpuid if inputs.vmm == Vmm::Ec2 => {}
            SectionType::Cpuid => gctx.update_cpuid_page(&label, gpa),
            SectionType::SnpKernelHashes => match &inputs.kernel_hashes {
                Some(h) => {
                    let page = kernel_hashes_page(fw, s, h)?;
                    gctx.update_normal_pages(&label, gpa, &page)?;
                }
                None => gctx.update_zero_pages(&label, gpa, size)?,
            },
        }
    }
    if inputs.vmm == Vmm::Ec2 {
        // EC2 measures the CPUID pages after every other section.
        for (i, s) in fw.sections().iter().enumerate() {
            if s.kind == SectionType::Cpuid {
                let label = format!("metadata[{i}] CPUID (EC2: last)");
                gctx.update_cpuid_page(&label, u64::from(s.gpa));
            }
        }
    }
    for n in 0..inputs.vcpus.get() {
        let (eip, label) = if n == 0 {
            (BSP_EIP, "VMSA vcpu 0 (BSP)".to_owned())
        } else {
            (ap_eip, format!("VMSA vcpu {n} (AP)"))
        };
        let page = vmsa_page(eip, inputs.guest_features, inputs.vmm);
        gctx.update_vmsa_page(&label, &page);
    }
    Ok(gctx.finish())
}

/// The SEV-ES launch digest: SHA-256 of the firmware, the padded hashes table if a kernel is
/// measured, and one VMSA per vCPU (`SEV_FEATURES` 0).
pub fn seves_launch_digest(
    firmware: &Firmware<'_>,
    kernel_hashes: Option<&KernelHashes>,
    vcpus: NonZeroU32,
    vmm: Vmm,
) -> Result<Sha256Digest, SnpError> {
    let ap_eip = ap_reset_eip(firmware, vcpus)?;
    let mut h = sev_hasher(firmware, kernel_hashes)?;
    for n in 0..vcpus.get() {
        let eip = if n == 0 { BSP_EIP } else { ap_eip };
        h.update(vmsa_page(eip, 0, vmm));
    }
    Ok(Sha256Digest(h.finalize().into()))
}

/// The SEV (plain) launch digest: SHA-256 of the firmware and, if a kernel is measured, the
/// padded hashes table.
pub fn sev_launch_digest(
    firmware: &Firmware<'_>,
    kernel_hashes: Option<&KernelHashes>,
) -> Result<Sha256Digest, SnpError> {
    Ok(Sha256Digest(
        sev_hasher(firmware, kernel_hashes)?.finalize().into(),
    ))
}

fn start(record: bool, seed: Option<Sha384Digest>) -> Gctx<Updating> {
    let g = seed.map_or_else(Gctx::new, Gctx::with_seed);
    if record {
        g.recording()
    } else {
        g
    }
}

/// The APs' reset EIP; the firmware must declare one, and it must be non-zero if there are APs.
fn ap_reset_eip(fw: &Firmware<'_>, vcpus: NonZeroU32) -> Result<u32, SnpError> {
    let eip = fw.sev_es_reset_eip().ok_or(SnpError::MissingResetBlock)?;
    if eip == 0 && vcpus.get() > 1 {
        return Err(SnpError::NoApResetEip { vcpus: vcpus.get() });
    }
    Ok(eip)
}

fn kernel_hashes_page(
    fw: &Firmware<'_>,
    section: &Section,
    hashes: &KernelHashes,
) -> Result<[u8; 4096], SnpError> {
    if section.size != 4096 {
        return Err(SnpError::KernelHashesSectionSize {
            gpa: section.gpa,
            size: section.size,
        });
    }
    let table = fw.hash_table().ok_or(SnpError::KernelHashesUnsupported {
        missing: "SEV_HASH_TABLE_RV entry",
    })?;
    hashes
        .page((table.gpa & 0xfff) as usize)
        .ok_or(SnpError::HashTableCrossesPage { gpa: table.gpa })
}

fn sev_hasher(fw: &Firmware<'_>, kernel_hashes: Option<&KernelHashes>) -> Result<Sha256, SnpError> {
    let mut h = Sha256::new();
    h.update(fw.data());
    if let Some(k) = kernel_hashes {
        if fw.hash_table().is_none_or(|t| t.gpa == 0) {
            return Err(SnpError::KernelHashesUnsupported {
                missing: "SEV_HASH_TABLE_RV entry",
            });
        }
        h.update(k.table());
    }
    Ok(h)
}

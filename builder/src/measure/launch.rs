//! Stage 6: the launch measurement of the built image on each platform profile.
//!
//! An adapter only: it reads the pinned firmware and the exact kernel and command line the
//! build outputs, and calls the pure `measurements` crate; no hashing logic lives here.

use std::num::NonZeroU32;

use anyhow::Context as _;
use measurements::record::{PlatformMeasurement, ProfileMeasurement};
use measurements::{snp, tdx, tpm};

use crate::manifest::{PageAddOrder, Profile, VmmType};
use crate::pin::PinnedFile;

/// The image identity a launch measurement covers: the exact bytes the VMM loads.
#[derive(Debug, Clone, Copy)]
pub struct BootImage<'a> {
    /// The kernel file (`-kernel`).
    pub kernel: &'a [u8],
    /// The initrd (`-initrd`), if any.
    pub initrd: Option<&'a [u8]>,
    /// The command line (`-append`).
    pub cmdline: &'a str,
}

/// A unified kernel image written for a vTPM profile.
#[derive(Debug, Clone, Copy)]
pub struct Uki<'a> {
    /// Its output file name.
    pub name: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// Computes one profile's measurements: one for a TDX or vTPM profile, one per listed vCPU
/// count for an SEV-SNP profile. `firmware` is the profile's pinned firmware file; `uki` the
/// UKI written for a vTPM profile.
pub fn measure(
    profile: &Profile,
    firmware: &PinnedFile,
    image: &BootImage<'_>,
    uki: Option<Uki<'_>>,
) -> anyhow::Result<Vec<ProfileMeasurement>> {
    let fw = fs_err::read(&firmware.path)?;
    anyhow::ensure!(
        measurements::Sha256Digest::of(&fw) == firmware.sha256,
        "{} changed while the build was reading it; rebuild",
        firmware.source
    );
    let platforms = match profile {
        Profile::Snp(p) => {
            let parsed = snp::Firmware::parse(&fw)
                .with_context(|| format!("{}: not an SEV-SNP capable OVMF", firmware.source))?;
            let vmm = match (p.vmm, &p.vcpu_type) {
                (VmmType::Qemu, Some(t)) => {
                    let t: snp::VcpuType = t.parse().with_context(|| format!("vcpu_type {t:?}"))?;
                    snp::Vmm::Qemu(t.signature())
                }
                (VmmType::Qemu, None) => anyhow::bail!("vmm = \"qemu\" needs vcpu_type"),
                (VmmType::Ec2, _) => snp::Vmm::Ec2,
                (VmmType::Gce, _) => snp::Vmm::Gce,
            };
            let kernel_hashes =
                snp::KernelHashes::from_bytes(image.kernel, image.initrd, Some(image.cmdline));
            let mut each = Vec::with_capacity(p.vcpus.counts().len());
            for &vcpus in p.vcpus.counts() {
                let inputs = snp::SnpInputs {
                    firmware: &parsed,
                    ovmf_hash: None,
                    kernel_hashes: Some(kernel_hashes),
                    vcpus,
                    vmm,
                    guest_features: p.guest_features,
                };
                let digest = snp::snp_launch_digest(&inputs).with_context(|| {
                    format!(
                        "SEV-SNP launch digest with {} for {vcpus} vCPUs",
                        firmware.source
                    )
                })?;
                each.push(PlatformMeasurement::Snp {
                    vcpus: NonZeroU32::get(vcpus),
                    vmm: match p.vmm {
                        VmmType::Qemu => "qemu",
                        VmmType::Ec2 => "ec2",
                        VmmType::Gce => "gce",
                    }
                    .to_owned(),
                    vcpu_type: p.vcpu_type.clone(),
                    guest_features: p.guest_features,
                    launch_digest: digest,
                });
            }
            each
        }
        Profile::Tdx(p) => {
            let tdvf = tdx::Tdvf::parse(&fw).with_context(|| {
                format!("{}: not a TDVF (OVMF Intel TDX) build", firmware.source)
            })?;
            let (order, order_name) = match p.page_add_order {
                PageAddOrder::SinglePass => (tdx::PageAddOrder::SinglePass, "single-pass"),
                PageAddOrder::TwoPass => (tdx::PageAddOrder::TwoPass, "two-pass"),
            };
            let rtmr1 = tdx::rtmr1_events(image.kernel, tdx::Rtmr1Order::KernelFirst)
                .context("RTMR1: the kernel is not a PE image (Authenticode)")?;
            let rtmr2 = tdx::rtmr2_events(image.cmdline, image.initrd);
            vec![PlatformMeasurement::Tdx {
                page_add_order: order_name.to_owned(),
                mrtd: tdx::mrtd(&tdvf, order),
                rtmr1: tpm::replay(&rtmr1),
                rtmr2: tpm::replay(&rtmr2),
            }]
        }
        Profile::Vtpm(_) => {
            let uki = uki.context("a vTPM profile is measured over its UKI, and none was built")?;
            vec![vtpm(uki, image.kernel)?]
        }
    };
    Ok(platforms
        .into_iter()
        .map(|platform| ProfileMeasurement {
            profile: profile.name().to_owned(),
            firmware_sha256: firmware.sha256,
            platform,
        })
        .collect())
}

/// PCR 4 and PCR 11 (SHA-256 bank) for booting `uki` from a UEFI boot option: the firmware
/// loads the UKI, systemd-stub measures its sections into PCR 11 and loads `kernel` (its
/// `.linux`) through the firmware, which measures it into PCR 4.
fn vtpm(uki: Uki<'_>, kernel: &[u8]) -> anyhow::Result<PlatformMeasurement> {
    let pcr4 =
        tpm::pcr4_events::<measurements::Sha256Digest>(&[("UKI", uki.bytes), (".linux", kernel)])
            .with_context(|| format!("PCR 4: {} or its kernel is not a PE image", uki.name))?;
    let pcr11 =
        tpm::uki_pcr11::<measurements::Sha256Digest>(uki.bytes, tpm::StubVersion::Systemd257)
            .with_context(|| format!("PCR 11 of {}", uki.name))?;
    Ok(PlatformMeasurement::Vtpm {
        uki: uki.name.to_owned(),
        uki_sha256: measurements::Sha256Digest::of(uki.bytes),
        pcr4: tpm::replay(&pcr4),
        pcr11: pcr11.after_stub,
    })
}

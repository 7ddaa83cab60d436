//! The initial VMSA (vCPU save area) page the VMM gives each vCPU, as KVM/QEMU, EC2 and GCE
//! lay it out (AMD APM vol. 2, table B-4; Linux `struct sev_es_save_area`).
//!
//! Offsets are fixed by the hardware format; every byte not written here is zero.

use super::cpu::CpuSignature;
use super::ovmf::PAGE_SIZE;

/// The BSP starts at the reset vector.
pub const BSP_EIP: u32 = 0xFFFF_FFF0;

/// The hypervisor that builds the initial vCPU state, which fixes a few register values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Vmm {
    /// QEMU/KVM (Linux ≥ 6.9 KVM: MXCSR 0x1f80, FCW 0x37f). RDX holds the vCPU model's
    /// CPUID signature.
    Qemu(CpuSignature),
    /// AWS EC2 (as sev-snp-measure 0.0.13: RDX 0x600, BSP CS attribute 0x9a, CPUID page last).
    Ec2,
    /// Google Compute Engine (RDX 0x600, G_PAT 0x70106, SEC_MEM pages unmeasured).
    Gce,
}

impl Vmm {
    /// `qemu`, `ec2` or `gce`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Qemu(_) => "qemu",
            Self::Ec2 => "ec2",
            Self::Gce => "gce",
        }
    }
}

/// A VMCB segment register: `{u16 selector, u16 attrib, u32 limit, u64 base}` at `offset`.
fn segment(page: &mut [u8; PAGE_SIZE], offset: usize, selector: u16, attrib: u16, base: u64) {
    put(page, offset, &selector.to_le_bytes());
    put(page, offset + 2, &attrib.to_le_bytes());
    put(page, offset + 4, &0xffffu32.to_le_bytes());
    put(page, offset + 8, &base.to_le_bytes());
}

fn put(page: &mut [u8; PAGE_SIZE], offset: usize, bytes: &[u8]) {
    // Offsets are the constants below, all inside the page.
    page[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// Builds the save area of a vCPU that starts at `eip` with `sev_features`.
pub fn vmsa_page(eip: u32, sev_features: u64, vmm: Vmm) -> [u8; PAGE_SIZE] {
    let mut cs_attrib = 0x9b;
    let (mut ss_attrib, mut tr_attrib, mut g_pat) = (0x93, 0x8b, 0x0007_0406_0007_0406u64);
    let (rdx, mxcsr, fcw): (u64, u32, u16) = match vmm {
        Vmm::Qemu(sig) => (u64::from(sig.0), 0x1f80, 0x37f),
        Vmm::Ec2 => {
            if eip == BSP_EIP {
                cs_attrib = 0x9a;
            }
            ss_attrib = 0x92;
            tr_attrib = 0x83;
            (0x600, 0, 0)
        }
        Vmm::Gce => {
            g_pat = 0x0007_0106;
            (0x600, 0, 0)
        }
    };
    let mut p = [0u8; PAGE_SIZE];
    segment(&mut p, 0x000, 0, 0x93, 0); // es
    segment(
        &mut p,
        0x010,
        0xf000,
        cs_attrib,
        u64::from(eip & 0xffff_0000),
    ); // cs
    segment(&mut p, 0x020, 0, ss_attrib, 0); // ss
    segment(&mut p, 0x030, 0, 0x93, 0); // ds
    segment(&mut p, 0x040, 0, 0x93, 0); // fs
    segment(&mut p, 0x050, 0, 0x93, 0); // gs
    segment(&mut p, 0x060, 0, 0, 0); // gdtr
    segment(&mut p, 0x070, 0, 0x82, 0); // ldtr
    segment(&mut p, 0x080, 0, 0, 0); // idtr
    segment(&mut p, 0x090, 0, tr_attrib, 0); // tr
    put(&mut p, 0x0d0, &0x1000u64.to_le_bytes()); // efer: SVME
    put(&mut p, 0x148, &0x40u64.to_le_bytes()); // cr4: MCE
    put(&mut p, 0x158, &0x10u64.to_le_bytes()); // cr0: ET
    put(&mut p, 0x160, &0x400u64.to_le_bytes()); // dr7
    put(&mut p, 0x168, &0xffff_0ff0u64.to_le_bytes()); // dr6
    put(&mut p, 0x170, &0x2u64.to_le_bytes()); // rflags
    put(&mut p, 0x178, &u64::from(eip & 0xffff).to_le_bytes()); // rip
    put(&mut p, 0x268, &g_pat.to_le_bytes()); // g_pat
    put(&mut p, 0x310, &rdx.to_le_bytes()); // rdx
    put(&mut p, 0x3b0, &sev_features.to_le_bytes()); // sev_features
    put(&mut p, 0x3e8, &0x1u64.to_le_bytes()); // xcr0: x87
    put(&mut p, 0x408, &mxcsr.to_le_bytes()); // mxcsr
    put(&mut p, 0x410, &fcw.to_le_bytes()); // x87_fcw
    p
}

//! OVMF footer table and SEV metadata parser, then every launch mode: errors are fine;
//! panics are bugs.
#![no_main]

use std::num::NonZeroU32;

use libfuzzer_sys::fuzz_target;
use measurements::snp::{self, CpuSignature, Firmware, KernelHashes, SnpInputs, Vmm};

fuzz_target!(|data: &[u8]| {
    let Ok(fw) = Firmware::parse(data) else { return };
    let two = NonZeroU32::new(2).unwrap();
    let hashes = KernelHashes::from_bytes(b"k", None, None);
    for kernel_hashes in [None, Some(hashes)] {
        for vmm in [Vmm::Qemu(CpuSignature(0xa00f11)), Vmm::Ec2, Vmm::Gce] {
            let inputs = SnpInputs {
                firmware: &fw,
                ovmf_hash: None,
                kernel_hashes,
                vcpus: two,
                vmm,
                guest_features: 1,
            };
            let _ = snp::snp_launch(&inputs, true);
            let _ = snp::seves_launch_digest(&fw, kernel_hashes.as_ref(), two, vmm);
        }
        let _ = snp::sev_launch_digest(&fw, kernel_hashes.as_ref());
    }
});

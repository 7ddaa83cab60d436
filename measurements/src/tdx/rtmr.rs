//! RTMR1 and RTMR2 event sequences for QEMU direct kernel boot through OVMF (TDVF).
//!
//! edk2 maps TCG PCRs to TDX RTMRs (PCR 1,7 → RTMR0; PCR 2–6 → RTMR1; PCR 8–15 → RTMR2) and
//! extends `RTMR = SHA-384(RTMR ‖ event digest)` ([`Register`](crate::tpm::Register)).
//!
//! RTMR0 is not computed here: it covers the VMM's ACPI tables, the TD HOB and the firmware
//! variables, which depend on the whole QEMU configuration. A caller that has those event
//! digests (a "platform profile") can replay them with [`replay`](crate::tpm::replay).

use crate::tpm::{authenticode, Event, PeError, CALLING_EFI_APPLICATION, SEPARATOR};
use crate::Sha384Digest;

/// `EV_EFI_ACTION` logged to RTMR1 when `ExitBootServices` is invoked.
pub const EXIT_BOOT_SERVICES_INVOCATION: &[u8] = b"Exit Boot Services Invocation";
/// `EV_EFI_ACTION` logged to RTMR1 when `ExitBootServices` succeeds.
pub const EXIT_BOOT_SERVICES_SUCCESS: &[u8] = b"Exit Boot Services Returned with Success";

/// Where the kernel's `EV_EFI_BOOT_SERVICES_APPLICATION` event sits relative to the
/// `EV_EFI_ACTION "Calling EFI Application..."` and separator events. It differs between OVMF
/// builds (virtee/tdx-measure#52), so it is an explicit input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Rtmr1Order {
    /// kernel, "Calling EFI Application", separator, exit-boot-services ×2: the QEMU direct-boot
    /// log of edk2 up to stable202505 as replayed by dstack-mr (the kernel is loaded before
    /// ReadyToBoot).
    #[default]
    KernelFirst,
    /// "Calling EFI Application", separator, kernel, exit-boot-services ×2: the TCG PC Client
    /// order for a boot option whose image is loaded after ReadyToBoot.
    KernelAfterSeparator,
}

/// The RTMR1 events for direct boot of `kernel` (the bzImage bytes the firmware hashes: the file
/// as given for QEMU ≥ 10.1; QEMU < 10.1 patches the setup header first, which the caller must
/// reproduce).
pub fn rtmr1_events(kernel: &[u8], order: Rtmr1Order) -> Result<Vec<Event<Sha384Digest>>, PeError> {
    let kernel = Event {
        description: "EV_EFI_BOOT_SERVICES_APPLICATION kernel (Authenticode SHA-384)".to_owned(),
        digest: authenticode(kernel)?,
    };
    let calling = Event::of_data(
        "EV_EFI_ACTION \"Calling EFI Application from Boot Option\"",
        CALLING_EFI_APPLICATION,
    );
    let separator = Event::of_data("EV_SEPARATOR", &SEPARATOR);
    let exit = [
        Event::of_data(
            "EV_EFI_ACTION \"Exit Boot Services Invocation\"",
            EXIT_BOOT_SERVICES_INVOCATION,
        ),
        Event::of_data(
            "EV_EFI_ACTION \"Exit Boot Services Returned with Success\"",
            EXIT_BOOT_SERVICES_SUCCESS,
        ),
    ];
    let mut events = match order {
        Rtmr1Order::KernelFirst => vec![kernel, calling, separator],
        Rtmr1Order::KernelAfterSeparator => vec![calling, separator, kernel],
    };
    events.extend(exit);
    Ok(events)
}

/// What OVMF appends to the kernel's command line when QEMU passes an initrd (`-initrd`).
///
/// edk2's `OvmfPkg/Library/X86QemuLoadImageLib` (`QemuLoadKernelImage`) builds the kernel's
/// UEFI `LoadOptions` as the fw_cfg command line, then `" initrd=initrd"` whenever the fw_cfg
/// initrd size is not zero, converted to UTF-16 and NUL-terminated. The Linux EFI stub measures
/// those `LoadOptions` (PCR 9, which TDX maps to RTMR2) and loads the initrd through the
/// `LoadFile2` protocol this suffix names. It has done so in every edk2 release since
/// edk2-stable202005 (when `X86QemuLoadImageLib` replaced the legacy QEMU kernel loader),
/// which covers every OVMF build this project pins (2022.11, 2025.02, 2026.08).
pub const OVMF_INITRD_SUFFIX: &str = " initrd=initrd";

/// The command line OVMF hands the kernel as its `LoadOptions` for QEMU direct boot:
/// `cmdline` (QEMU `-append`), then [`OVMF_INITRD_SUFFIX`] when the initrd is not empty.
///
/// This is the string RTMR2 measures. SEV-SNP's kernel-hashes table is different: QEMU hashes
/// the fw_cfg command line blob itself, before OVMF appends anything, so the SNP launch
/// digest takes `cmdline` verbatim.
pub fn ovmf_load_options(cmdline: &str, initrd: Option<&[u8]>) -> String {
    match initrd {
        Some(initrd) if !initrd.is_empty() => format!("{cmdline}{OVMF_INITRD_SUFFIX}"),
        _ => cmdline.to_owned(),
    }
}

/// The RTMR2 events for QEMU direct boot through OVMF: the kernel's `LoadOptions`
/// ([`ovmf_load_options`]: `cmdline`, plus ` initrd=initrd` when an initrd is loaded) as UTF-16LE
/// with a terminating `u16` NUL, then the initrd if there is one.
///
/// `cmdline` is the command line given to QEMU (`-append`), not the one the kernel ends up
/// with. The rule agrees with the two implementations used on TDX hardware: virtee's
/// `tdx-measure` (`measure_rtmr2_direct`) and dstack's `dstack-mr` (`measured_kernel_cmdline`).
pub fn rtmr2_events(cmdline: &str, initrd: Option<&[u8]>) -> Vec<Event<Sha384Digest>> {
    let options = ovmf_load_options(cmdline, initrd);
    let mut utf16: Vec<u8> = options.encode_utf16().flat_map(u16::to_le_bytes).collect();
    utf16.extend([0, 0]);
    let mut events = vec![Event::of_data(
        format!(
            "kernel command line as OVMF passes it (UTF-16LE + NUL, {} bytes)",
            utf16.len()
        ),
        &utf16,
    )];
    if let Some(initrd) = initrd {
        events.push(Event::of_data(
            format!("initrd ({} bytes)", initrd.len()),
            initrd,
        ));
    }
    events
}

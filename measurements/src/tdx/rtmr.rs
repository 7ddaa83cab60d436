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

/// The RTMR2 events for direct boot: the command line as OVMF measures it (UTF-16LE with a
/// terminating `u16` NUL), then the initrd if there is one.
///
/// `cmdline` is measured verbatim. Some OVMF versions append ` initrd=initrd` when an initrd is
/// passed through fw_cfg; pass the string OVMF actually hands to the kernel.
pub fn rtmr2_events(cmdline: &str, initrd: Option<&[u8]>) -> Vec<Event<Sha384Digest>> {
    let mut utf16: Vec<u8> = cmdline.encode_utf16().flat_map(u16::to_le_bytes).collect();
    utf16.extend([0, 0]);
    let mut events = vec![Event::of_data(
        format!(
            "kernel command line (UTF-16LE + NUL, {} bytes)",
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

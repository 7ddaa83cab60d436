//! PCR 4 as edk2 extends it when it starts a boot option.
//!
//! Sequence (TCG PC Client Platform Firmware Profile §3.3.4.5, edk2 `Tcg2Dxe` `OnReadyToBoot`
//! and `DxeTpm2MeasureBootLib`): `EV_EFI_ACTION "Calling EFI Application from Boot Option"`,
//! `EV_SEPARATOR` (four zero bytes), then one `EV_EFI_BOOT_SERVICES_APPLICATION` per PE image
//! the firmware loads, with the image's Authenticode hash as digest. For a UKI booted directly
//! that is the UKI, then the `.linux` kernel systemd-stub hands to `LoadImage`.

use super::pcr::{Bank, Event, CALLING_EFI_APPLICATION, SEPARATOR};
use super::pe::{PeError, PeFile};

/// The PCR 4 events for booting the PE `images` in order (e.g. `[uki, kernel]`).
/// [`replay`](super::replay) gives the PCR value.
pub fn pcr4_events<D: Bank>(images: &[(&str, &[u8])]) -> Result<Vec<Event<D>>, PeError> {
    let mut events = vec![
        Event::of_data(
            "EV_EFI_ACTION \"Calling EFI Application from Boot Option\"",
            CALLING_EFI_APPLICATION,
        ),
        Event::of_data("EV_SEPARATOR", &SEPARATOR),
    ];
    for (name, pe) in images {
        events.push(Event {
            description: format!("EV_EFI_BOOT_SERVICES_APPLICATION {name} (Authenticode)"),
            digest: PeFile::parse(pe)?.authenticode(),
        });
    }
    Ok(events)
}

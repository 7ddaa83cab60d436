//! Intel TDX launch measurements: `MRTD` from the TDVF firmware image, and the RTMR1/RTMR2
//! event sequences of a direct kernel boot.
//!
//! - [`Tdvf::parse`]: the TDVF metadata (found through the OVMF footer table);
//! - [`mrtd`]: the build-time measurement, in either [`PageAddOrder`];
//! - [`rtmr1_events`], [`rtmr2_events`]: events to [`replay`](crate::tpm::replay).
//!
//! RTMR0 (ACPI tables, TD HOB, firmware variables) depends on the whole VMM configuration and
//! is not synthesised here; a verifier that has its event digests (a platform profile) replays
//! them with [`replay`](crate::tpm::replay).

mod mrtd;
mod rtmr;
mod tdvf;

pub use mrtd::{mrtd, Mrtd, PageAddOrder};
pub use rtmr::{
    ovmf_load_options, rtmr1_events, rtmr2_events, Rtmr1Order, EXIT_BOOT_SERVICES_INVOCATION,
    EXIT_BOOT_SERVICES_SUCCESS, OVMF_INITRD_SUFFIX,
};
pub use tdvf::{Tdvf, TdvfError, TdvfSection, TdvfSectionType, MAX_SECTION_MEMORY};

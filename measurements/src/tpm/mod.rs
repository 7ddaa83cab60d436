//! vTPM PCRs as firmware and systemd-stub extend them.
//!
//! - [`Register`] / [`Bank`]: a PCR (or RTMR) and the extend operation, per bank;
//! - [`authenticode`] / [`PeFile`]: bounds-checked PE parsing and the Authenticode hash;
//! - [`pcr11`] / [`uki_pcr11`]: PCR 11 for UKI sections and boot phases (systemd-measure);
//! - [`pcr4_events`]: PCR 4 for the PE images the firmware loads.

mod pcr;
mod pcr4;
mod pe;
mod uki;

pub use pcr::{replay, Bank, Event, Register, CALLING_EFI_APPLICATION, SEPARATOR};
pub use pcr4::pcr4_events;
pub use pe::{authenticode, PeError, PeFile, PeSection};
pub use uki::{
    pcr11, uki_pcr11, uki_sections, BootPhase, Pcr11, StubVersion, UkiError, UkiSection,
};

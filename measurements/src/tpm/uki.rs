//! PCR 11 as systemd-stub extends it for a unified kernel image (UKI).
//!
//! For every section the stub knows, in the fixed order of systemd's `unified_sections[]`
//! (`src/fundamental/uki.c`), skipping `.pcrsig`: extend `H(name ‖ "\0")`, then `H(payload)`,
//! where the payload is the section as loaded in memory (`VirtualSize` bytes: the raw data,
//! zero-filled if `VirtualSize > SizeOfRawData`). Then userspace extends one string per boot
//! phase (`systemd-pcrphase`), with no NUL: `enter-initrd`, `leave-initrd`, `sysinit`, `ready`.
//! This is what `systemd-measure calculate` predicts.

use std::borrow::Cow;

use super::pcr::{Bank, Event, Register};
use super::pe::{PeError, PeFile};

/// Why PCR 11 cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UkiError {
    /// The UKI is not a valid PE image.
    #[error("UKI is not a valid PE image")]
    Pe(#[from] PeError),
    /// A section appears twice.
    #[error("UKI section {name} appears more than once")]
    DuplicateSection {
        /// The section name.
        name: &'static str,
    },
    /// The UKI has a section whose measurement this crate does not model for that stub.
    #[error("UKI section {name} is not supported for {stub:?} (multi-profile/auto-DTB UKIs are out of scope)")]
    UnsupportedSection {
        /// The section name.
        name: &'static str,
        /// The stub version asked for.
        stub: StubVersion,
    },
}

/// The UKI sections systemd-stub measures, in measurement order (`unified_sections[]` of
/// systemd 257; systemd 252's list is the subsequence without `.ucode`, `.uname` and `.sbat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum UkiSection {
    /// `.linux`: the kernel PE image.
    Linux,
    /// `.osrel`: os-release.
    Osrel,
    /// `.cmdline`: kernel command line.
    Cmdline,
    /// `.initrd`: initramfs.
    Initrd,
    /// `.ucode`: microcode initrd (systemd ≥ 256).
    Ucode,
    /// `.splash`: boot splash bitmap.
    Splash,
    /// `.dtb`: devicetree.
    Dtb,
    /// `.uname`: kernel release (systemd ≥ 254).
    Uname,
    /// `.sbat`: SBAT metadata (systemd ≥ 254).
    Sbat,
    /// `.pcrsig`: PCR signature JSON; never measured.
    Pcrsig,
    /// `.pcrpkey`: public key for PCR signatures.
    Pcrpkey,
    /// `.profile`: multi-profile UKIs (systemd ≥ 257); not modelled.
    Profile,
    /// `.dtbauto`: automatically selected devicetrees (systemd ≥ 257); not modelled.
    Dtbauto,
    /// `.hwids`: hardware IDs for `.dtbauto` (systemd ≥ 257); not modelled.
    Hwids,
}

impl UkiSection {
    /// All sections in measurement order.
    pub const ALL: [UkiSection; 14] = [
        Self::Linux,
        Self::Osrel,
        Self::Cmdline,
        Self::Initrd,
        Self::Ucode,
        Self::Splash,
        Self::Dtb,
        Self::Uname,
        Self::Sbat,
        Self::Pcrsig,
        Self::Pcrpkey,
        Self::Profile,
        Self::Dtbauto,
        Self::Hwids,
    ];

    /// The PE section name, e.g. `.linux`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linux => ".linux",
            Self::Osrel => ".osrel",
            Self::Cmdline => ".cmdline",
            Self::Initrd => ".initrd",
            Self::Ucode => ".ucode",
            Self::Splash => ".splash",
            Self::Dtb => ".dtb",
            Self::Uname => ".uname",
            Self::Sbat => ".sbat",
            Self::Pcrsig => ".pcrsig",
            Self::Pcrpkey => ".pcrpkey",
            Self::Profile => ".profile",
            Self::Dtbauto => ".dtbauto",
            Self::Hwids => ".hwids",
        }
    }

    /// The section called `name`, if it is a UKI section.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name().as_bytes() == name)
    }
}

/// Which systemd-stub will measure the UKI: the set of measured sections depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StubVersion {
    /// systemd 252 (Debian bookworm): `.linux .osrel .cmdline .initrd .splash .dtb .pcrpkey`.
    Systemd252,
    /// systemd 254–257: adds `.ucode` (256), `.uname` and `.sbat`. `.profile`, `.dtbauto` and
    /// `.hwids` (257) are rejected as unsupported.
    Systemd257,
}

impl StubVersion {
    /// `Ok(true)` if this stub measures `s`, `Ok(false)` if it ignores it.
    fn measures(self, s: UkiSection) -> Result<bool, UkiError> {
        use UkiSection::*;
        match (self, s) {
            (_, Pcrsig) => Ok(false),
            (Self::Systemd252, Ucode | Uname | Sbat | Profile | Dtbauto | Hwids) => Ok(false),
            (Self::Systemd257, Profile | Dtbauto | Hwids) => Err(UkiError::UnsupportedSection {
                name: s.name(),
                stub: self,
            }),
            _ => Ok(true),
        }
    }
}

/// A boot phase string `systemd-pcrphase` extends into PCR 11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootPhase {
    /// Extended by `systemd-pcrphase-initrd.service` on entering the initrd.
    EnterInitrd,
    /// Extended on leaving the initrd.
    LeaveInitrd,
    /// Extended at `sysinit.target`.
    Sysinit,
    /// Extended when the system is up.
    Ready,
}

impl BootPhase {
    /// All phases in boot order.
    pub const ALL: [BootPhase; 4] = [
        Self::EnterInitrd,
        Self::LeaveInitrd,
        Self::Sysinit,
        Self::Ready,
    ];

    /// The measured string (no NUL).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnterInitrd => "enter-initrd",
            Self::LeaveInitrd => "leave-initrd",
            Self::Sysinit => "sysinit",
            Self::Ready => "ready",
        }
    }
}

/// PCR 11 in one bank: the event log and the value after the stub and after each phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcr11<D: Bank> {
    /// The events the stub extends, in order (name, then payload, per section).
    pub events: Vec<Event<D>>,
    /// The value when the kernel starts (after the stub, before any phase).
    pub after_stub: D,
    /// The value after each phase, cumulatively, in boot order.
    pub phases: Vec<(BootPhase, D)>,
}

/// PCR 11 for the given section payloads (any order; each at most once) as `stub` measures them.
pub fn pcr11<D: Bank>(
    sections: &[(UkiSection, &[u8])],
    stub: StubVersion,
) -> Result<Pcr11<D>, UkiError> {
    let mut reg = Register::<D>::new();
    let mut events = Vec::new();
    for s in UkiSection::ALL {
        let mut found = sections.iter().filter(|(k, _)| *k == s);
        let Some((_, payload)) = found.next() else {
            continue;
        };
        if found.next().is_some() {
            return Err(UkiError::DuplicateSection { name: s.name() });
        }
        if !stub.measures(s)? {
            continue;
        }
        let mut name = s.name().as_bytes().to_vec();
        name.push(0);
        for e in [
            Event::of_data(format!("section name \"{}\\0\"", s.name()), &name),
            Event::of_data(
                format!("section {} payload ({} bytes)", s.name(), payload.len()),
                payload,
            ),
        ] {
            reg.extend(&e.digest);
            events.push(e);
        }
    }
    let after_stub = reg.value();
    let phases = BootPhase::ALL
        .into_iter()
        .map(|p| {
            reg.extend_data(p.as_str().as_bytes());
            (p, reg.value())
        })
        .collect();
    Ok(Pcr11 {
        events,
        after_stub,
        phases,
    })
}

/// The UKI sections of a PE image with their in-memory payloads (`VirtualSize` bytes,
/// zero-filled past `SizeOfRawData`). Sections that are not UKI sections (`.text`, `.reloc`...)
/// are skipped.
pub fn uki_sections<'a>(pe: &PeFile<'a>) -> Vec<(UkiSection, Cow<'a, [u8]>)> {
    let mut out = Vec::new();
    for s in pe.sections() {
        let Some(kind) = UkiSection::from_name(&s.name) else {
            continue;
        };
        let raw = pe.raw_data(s);
        let vs = s.virtual_size as usize;
        let payload = match raw.get(..vs) {
            Some(p) => Cow::Borrowed(p),
            None => {
                let mut v = raw.to_vec();
                v.resize(vs, 0);
                Cow::Owned(v)
            }
        };
        out.push((kind, payload));
    }
    out
}

/// PCR 11 of a UKI image.
pub fn uki_pcr11<D: Bank>(uki: &[u8], stub: StubVersion) -> Result<Pcr11<D>, UkiError> {
    let pe = PeFile::parse(uki)?;
    let sections = uki_sections(&pe);
    let refs: Vec<(UkiSection, &[u8])> = sections.iter().map(|(k, p)| (*k, p.as_ref())).collect();
    pcr11(&refs, stub)
}

//! Guest vCPU identity: the CPUID(1).EAX signature QEMU puts in RDX of every initial VMSA.

use core::fmt;
use core::str::FromStr;

/// The 32-bit CPUID Fn0000_0001_EAX family/model/stepping signature of a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CpuSignature(pub u32);

impl CpuSignature {
    /// Encodes family, model and stepping as AMD's CPUID specification (publication 25481,
    /// "CPUID Fn0000_0001_EAX") describes: families above 0xF split into a base of 0xF and an
    /// extended part; only the low 8 bits of the extended family, and the low 8 bits of the
    /// model and 4 of the stepping, are kept.
    pub fn from_family_model_stepping(family: u32, model: u32, stepping: u32) -> Self {
        let (family_low, family_high) = if family > 0xf {
            (0xf, (family - 0xf) & 0xff)
        } else {
            (family, 0)
        };
        let model_low = model & 0xf;
        let model_high = (model >> 4) & 0xf;
        Self(
            (family_high << 20)
                | (model_high << 16)
                | (family_low << 8)
                | (model_low << 4)
                | (stepping & 0xf),
        )
    }
}

impl fmt::Display for CpuSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// A QEMU AMD EPYC CPU model usable for an SEV-SNP guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VcpuType {
    /// `EPYC` (Naples): family 23, model 1, stepping 2.
    Epyc,
    /// `EPYC-Rome`: family 23, model 49, stepping 0.
    EpycRome,
    /// `EPYC-Milan`: family 25, model 1, stepping 1.
    EpycMilan,
    /// `EPYC-Genoa`: family 25, model 17, stepping 0.
    EpycGenoa,
    /// `EPYC-Turin`: family 26, model 0, stepping 0.
    EpycTurin,
}

/// The QEMU model names accepted for each type, as sev-snp-measure 0.0.13 lists them
/// (QEMU's `builtin_x86_defs` versions and aliases).
const NAMES: &[(&str, VcpuType)] = &[
    ("EPYC", VcpuType::Epyc),
    ("EPYC-v1", VcpuType::Epyc),
    ("EPYC-v2", VcpuType::Epyc),
    ("EPYC-IBPB", VcpuType::Epyc),
    ("EPYC-v3", VcpuType::Epyc),
    ("EPYC-v4", VcpuType::Epyc),
    ("EPYC-Rome", VcpuType::EpycRome),
    ("EPYC-Rome-v1", VcpuType::EpycRome),
    ("EPYC-Rome-v2", VcpuType::EpycRome),
    ("EPYC-Rome-v3", VcpuType::EpycRome),
    ("EPYC-Milan", VcpuType::EpycMilan),
    ("EPYC-Milan-v1", VcpuType::EpycMilan),
    ("EPYC-Milan-v2", VcpuType::EpycMilan),
    ("EPYC-Genoa", VcpuType::EpycGenoa),
    ("EPYC-Genoa-v1", VcpuType::EpycGenoa),
    ("EPYC-Turin", VcpuType::EpycTurin),
];

impl VcpuType {
    /// Every accepted model name (including version aliases), in a fixed order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(n, _)| *n)
    }

    /// The CPUID signature of this model.
    pub fn signature(self) -> CpuSignature {
        let (f, m, s) = match self {
            Self::Epyc => (23, 1, 2),
            Self::EpycRome => (23, 49, 0),
            Self::EpycMilan => (25, 1, 1),
            Self::EpycGenoa => (25, 17, 0),
            Self::EpycTurin => (26, 0, 0),
        };
        CpuSignature::from_family_model_stepping(f, m, s)
    }
}

/// A name that is not one of the QEMU EPYC models in [`VcpuType::names`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown vCPU type {name:?}; expected one of: {}", NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
pub struct UnknownVcpuType {
    /// The name given.
    pub name: String,
}

impl FromStr for VcpuType {
    type Err = UnknownVcpuType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, t)| *t)
            .ok_or_else(|| UnknownVcpuType { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_amd_encoding() {
        // Milan is family 19h model 01h stepping 1: CPUID(1).EAX = 0x00A00F11.
        assert_eq!(VcpuType::EpycMilan.signature(), CpuSignature(0x00A0_0F11));
        assert_eq!(VcpuType::Epyc.signature(), CpuSignature(0x0080_0F12));
        assert_eq!(VcpuType::EpycTurin.signature(), CpuSignature(0x00B0_0F00));
        assert_eq!("EPYC-Rome-v3".parse::<VcpuType>(), Ok(VcpuType::EpycRome));
        assert!("epyc".parse::<VcpuType>().is_err());
    }
}

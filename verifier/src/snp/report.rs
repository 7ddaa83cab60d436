//! The SEV-SNP `ATTESTATION_REPORT` (AMD SEV-SNP ABI specification, publication 56860,
//! table "ATTESTATION_REPORT Structure"), versions 2, 3 and 5: 1184 bytes, little-endian.
//!
//! Parsing only decodes the layout; it never judges a value (that is [`super::verify`]'s
//! job, so every judgement appears as a named check). It refuses a wrong length and a
//! version whose layout it does not know: the layout of the fields used here is the same in
//! versions 2, 3 and 5 (3 added the CPUID bytes at 0x188, 5 the mitigation vectors at 0x1F8).

use super::reader::Reader;

/// Size of a report in bytes. Changing it breaks the format.
pub const REPORT_LEN: usize = 0x4A0;
/// The signature covers bytes `0..SIGNED_LEN`.
pub const SIGNED_LEN: usize = 0x2A0;
/// Report versions whose layout this parser knows.
pub const KNOWN_VERSIONS: [u32; 3] = [2, 3, 5];

/// Why bytes are not a report this crate can judge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportError {
    /// The report is not [`REPORT_LEN`] bytes.
    Length {
        /// Bytes found.
        found: usize,
    },
    /// `VERSION` (offset 0x00) is not one of [`KNOWN_VERSIONS`].
    UnknownVersion {
        /// The version found.
        version: u32,
    },
}

impl core::fmt::Display for ReportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Length { found } => write!(
                f,
                "an SEV-SNP attestation report is {REPORT_LEN} bytes, found {found}"
            ),
            Self::UnknownVersion { version } => write!(
                f,
                "SEV-SNP report version {version} is not one of {KNOWN_VERSIONS:?}"
            ),
        }
    }
}

impl core::error::Error for ReportError {}

/// A parsed report. Field names and offsets follow the ABI specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// 0x000 `VERSION`.
    pub version: u32,
    /// 0x004 `GUEST_SVN`.
    pub guest_svn: u32,
    /// 0x008 `POLICY`: the guest policy the VM was launched with (see [`GuestPolicy`]).
    pub policy: GuestPolicy,
    /// 0x010 `FAMILY_ID` (from the ID block).
    pub family_id: [u8; 16],
    /// 0x020 `IMAGE_ID` (from the ID block).
    pub image_id: [u8; 16],
    /// 0x030 `VMPL` the report was requested at.
    pub vmpl: u32,
    /// 0x034 `SIGNATURE_ALGO`: 1 is ECDSA P-384 with SHA-384.
    pub signature_algo: u32,
    /// 0x038 `CURRENT_TCB`.
    pub current_tcb: u64,
    /// 0x040 `PLATFORM_INFO` (bit 0 SMT enabled, bit 1 TSME enabled, ...).
    pub platform_info: u64,
    /// 0x048 bits 0 `AUTHOR_KEY_EN`, 1 `MASK_CHIP_KEY`, 2..4 `SIGNING_KEY` (0 VCEK, 1 VLEK, 7 none).
    pub key_info: u32,
    /// 0x050 `REPORT_DATA`: the guest's 64 bytes (here: the session binding).
    pub report_data: [u8; 64],
    /// 0x090 `MEASUREMENT`: the launch digest.
    pub measurement: [u8; 48],
    /// 0x0C0 `HOST_DATA`.
    pub host_data: [u8; 32],
    /// 0x0E0 `ID_KEY_DIGEST`.
    pub id_key_digest: [u8; 48],
    /// 0x110 `AUTHOR_KEY_DIGEST`.
    pub author_key_digest: [u8; 48],
    /// 0x140 `REPORT_ID`.
    pub report_id: [u8; 32],
    /// 0x160 `REPORT_ID_MA`.
    pub report_id_ma: [u8; 32],
    /// 0x180 `REPORTED_TCB`: the TCB the VCEK was derived from.
    pub reported_tcb: u64,
    /// 0x188 `CPUID_FAM_ID`, `CPUID_MOD_ID`, `CPUID_STEP` (version 3 and later; zero in 2).
    pub cpuid: [u8; 3],
    /// 0x1A0 `CHIP_ID`.
    pub chip_id: [u8; 64],
    /// 0x1E0 `COMMITTED_TCB`.
    pub committed_tcb: u64,
    /// 0x1F0 `LAUNCH_TCB`.
    pub launch_tcb: u64,
    /// 0x2A0 `SIGNATURE.R`: 72 bytes, little-endian (the scalar fills the low 48).
    pub signature_r: [u8; 72],
    /// 0x2E8 `SIGNATURE.S`: 72 bytes, little-endian.
    pub signature_s: [u8; 72],
}

/// The guest policy (ABI specification, table "Guest Policy Structure").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    /// Bit 16: SMT may be enabled on the host.
    pub const SMT: u64 = 1 << 16;
    /// Bit 17: reserved, must be one.
    pub const RESERVED_ONE: u64 = 1 << 17;
    /// Bit 18: a migration agent may be associated with the guest.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 19: debugging is allowed (the host can read and write guest memory).
    pub const DEBUG: u64 = 1 << 19;
    /// Bits 26 and up are not defined by any ABI version this crate knows.
    pub const UNKNOWN: u64 = !((1 << 26) - 1);

    /// Whether `bit` is set.
    pub fn has(self, bit: u64) -> bool {
        self.0 & bit != 0
    }
}

impl Report {
    /// Parses a report, refusing a wrong length or an unknown version.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReportError> {
        if bytes.len() != REPORT_LEN {
            return Err(ReportError::Length { found: bytes.len() });
        }
        let mut r = Reader::new(bytes);
        // Each field is read at the offset its name cites; the reader is positioned by
        // `at`, so a misplaced field is a visible constant, not an accumulated error.
        let short = ReportError::Length { found: bytes.len() };
        let version = r.at(0x000).u32().ok_or(short.clone())?;
        if !KNOWN_VERSIONS.contains(&version) {
            return Err(ReportError::UnknownVersion { version });
        }
        let report = (|| {
            Some(Report {
                version,
                guest_svn: r.at(0x004).u32()?,
                policy: GuestPolicy(r.at(0x008).u64()?),
                family_id: r.at(0x010).array()?,
                image_id: r.at(0x020).array()?,
                vmpl: r.at(0x030).u32()?,
                signature_algo: r.at(0x034).u32()?,
                current_tcb: r.at(0x038).u64()?,
                platform_info: r.at(0x040).u64()?,
                key_info: r.at(0x048).u32()?,
                report_data: r.at(0x050).array()?,
                measurement: r.at(0x090).array()?,
                host_data: r.at(0x0C0).array()?,
                id_key_digest: r.at(0x0E0).array()?,
                author_key_digest: r.at(0x110).array()?,
                report_id: r.at(0x140).array()?,
                report_id_ma: r.at(0x160).array()?,
                reported_tcb: r.at(0x180).u64()?,
                cpuid: r.at(0x188).array()?,
                chip_id: r.at(0x1A0).array()?,
                committed_tcb: r.at(0x1E0).u64()?,
                launch_tcb: r.at(0x1F0).u64()?,
                signature_r: r.at(0x2A0).array()?,
                signature_s: r.at(0x2E8).array()?,
            })
        })();
        report.ok_or(short)
    }

    /// `SIGNING_KEY` (bits 2..4 of the word at 0x048): 0 VCEK, 1 VLEK, 7 none.
    pub fn signing_key(&self) -> u32 {
        (self.key_info >> 2) & 0b111
    }

    /// `MASK_CHIP_KEY` (bit 1 of the word at 0x048): the chip ID is zeroed.
    pub fn mask_chip_key(&self) -> bool {
        self.key_info & 0b10 != 0
    }
}

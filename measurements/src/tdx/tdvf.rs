//! TDVF metadata: the sections the VMM loads into a TD before it starts (Intel "TDX Virtual
//! Firmware Design Guide" §11, "TDVF Metadata").
//!
//! The footer-table entry `TDX_METADATA_OFFSET` (`e47a6535-984a-4798-865e-4685a7bf8ec2`) holds
//! a `u32` offset from the end of the image to the descriptor
//! `{"TDVF", u32 Length, u32 Version = 1, u32 NumberOfSectionEntries}`, followed by 32-byte
//! sections `{u32 DataOffset, u32 RawDataSize, u64 MemoryAddress, u64 MemoryDataSize,
//! u32 Type, u32 Attributes}`.

use crate::ovmf_table::{self, TableError};
use crate::reader::{self, u32_le, u64_le};

/// `e47a6535-984a-4798-865e-4685a7bf8ec2`: the footer-table entry pointing at the descriptor.
const TDX_METADATA_OFFSET_GUID: [u8; 16] = ovmf_table::guid(
    0xe47a6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);

/// Largest `MemoryDataSize` accepted for one section (4 GiB). TDVF sections describe the
/// firmware image and its early memory, all below 4 GiB; the bound keeps MRTD computation on
/// hostile metadata from running for hours.
pub const MAX_SECTION_MEMORY: u64 = 1 << 32;

/// Page granularity of TDX private memory.
pub(crate) const PAGE_SIZE: u64 = 4096;

/// Why firmware bytes do not carry usable TDVF metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TdvfError {
    /// The image is too small to hold the footer table.
    #[error("firmware image of {len} bytes is too small for an OVMF footer table")]
    TooSmall {
        /// The image length.
        len: usize,
    },
    /// No footer-table GUID where it should be.
    #[error("no OVMF footer table: GUID 96b582de-... not found at offset {offset:#x}")]
    NoFooterTable {
        /// Where the footer was expected.
        offset: u64,
    },
    /// The footer's total length does not fit in the image.
    #[error("OVMF footer table at {offset:#x}: total length {total_len} does not fit")]
    FooterTableLength {
        /// Footer offset.
        offset: u64,
        /// The declared length.
        total_len: usize,
    },
    /// A table entry's length is invalid.
    #[error("OVMF footer table entry ending at {offset:#x}: invalid length {entry_len}")]
    FooterEntry {
        /// Offset of the entry's trailer.
        offset: u64,
        /// The declared length.
        entry_len: usize,
    },
    /// The same GUID appears twice in the footer table.
    #[error("OVMF footer table has two entries with GUID {guid}")]
    DuplicateFooterEntry {
        /// The GUID, in canonical form.
        guid: String,
    },
    /// The footer table has no `TDX_METADATA_OFFSET` entry: not a TDX build.
    #[error(
        "firmware has no TDX_METADATA_OFFSET entry (e47a6535-...): not a TDVF (Intel TDX) build"
    )]
    NoTdxMetadata,
    /// The `TDX_METADATA_OFFSET` entry is not 4 bytes or points outside the image.
    #[error("TDX_METADATA_OFFSET value {value:#x} does not point inside the {len}-byte image")]
    BadMetadataOffset {
        /// The offset read (from the end of the image).
        value: u64,
        /// The image length.
        len: usize,
    },
    /// The descriptor is truncated or has the wrong signature, version or length.
    #[error("TDVF descriptor at {offset:#x}: {what}")]
    BadDescriptor {
        /// Descriptor offset.
        offset: u64,
        /// Which check failed.
        what: &'static str,
    },
    /// A section entry is invalid.
    #[error("TDVF section #{index}: {what}")]
    BadSection {
        /// Section index.
        index: usize,
        /// Which check failed.
        what: &'static str,
    },
    /// A section has a type this crate does not know (a new edk2 section type must be modelled,
    /// not guessed).
    #[error("TDVF section #{index}: unknown type {value}")]
    UnknownSectionType {
        /// Section index.
        index: usize,
        /// The type value.
        value: u32,
    },
    /// A section has attribute bits this crate does not know.
    #[error("TDVF section #{index}: unknown attribute bits {value:#x}")]
    UnknownAttributes {
        /// Section index.
        index: usize,
        /// The attribute value.
        value: u32,
    },
}

/// TDVF section types (`TDX_METADATA_SECTION_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TdvfSectionType {
    /// 0: boot firmware volume (code).
    Bfv,
    /// 1: configuration firmware volume (variables).
    Cfv,
    /// 2: TD HOB.
    TdHob,
    /// 3: temporary memory.
    TempMem,
    /// 4: permanent memory.
    PermMem,
    /// 5: payload.
    Payload,
    /// 6: payload parameters.
    PayloadParam,
}

impl TdvfSectionType {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Bfv,
            1 => Self::Cfv,
            2 => Self::TdHob,
            3 => Self::TempMem,
            4 => Self::PermMem,
            5 => Self::Payload,
            6 => Self::PayloadParam,
            _ => return None,
        })
    }

    /// The spec's short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bfv => "BFV",
            Self::Cfv => "CFV",
            Self::TdHob => "TD_HOB",
            Self::TempMem => "TempMem",
            Self::PermMem => "PermMem",
            Self::Payload => "Payload",
            Self::PayloadParam => "PayloadParam",
        }
    }
}

/// One TDVF section, validated: page-aligned, in bounds, `RawDataSize ≤ MemoryDataSize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdvfSection {
    /// Offset of the section's data in the firmware image.
    pub data_offset: u32,
    /// Bytes of data in the image.
    pub raw_data_size: u32,
    /// Guest physical address (4 KiB aligned).
    pub memory_address: u64,
    /// Bytes of guest memory (multiple of 4 KiB).
    pub memory_data_size: u64,
    /// Section type.
    pub section_type: TdvfSectionType,
    /// Bit 0 `MR_EXTEND`: content measured into MRTD.
    pub mr_extend: bool,
    /// Bit 1 `PAGE_AUG`: added after launch, not measured at all.
    pub page_aug: bool,
}

impl TdvfSection {
    /// Number of 4 KiB pages.
    pub fn pages(&self) -> u64 {
        self.memory_data_size / PAGE_SIZE
    }
}

/// The TDVF metadata of a firmware image, borrowing the image for section contents.
#[derive(Debug, Clone)]
pub struct Tdvf<'a> {
    fw: &'a [u8],
    sections: Vec<TdvfSection>,
}

impl<'a> Tdvf<'a> {
    /// Parses the TDVF metadata of the firmware image `fw` (the whole `OVMF.fd`).
    pub fn parse(fw: &'a [u8]) -> Result<Self, TdvfError> {
        let len = fw.len();
        let entry = find_entry(fw, &TDX_METADATA_OFFSET_GUID)?.ok_or(TdvfError::NoTdxMetadata)?;
        let value =
            u32_le(entry, 0)
                .filter(|_| entry.len() == 4)
                .ok_or(TdvfError::BadMetadataOffset {
                    value: entry.len() as u64,
                    len,
                })?;
        let desc = len
            .checked_sub(value as usize)
            .ok_or(TdvfError::BadMetadataOffset {
                value: value.into(),
                len,
            })?;
        let bad = |what| TdvfError::BadDescriptor {
            offset: desc as u64,
            what,
        };
        let header = fw.get(desc..).ok_or(bad("beyond the end of the image"))?;
        if reader::slice(header, 0, 4) != Some(b"TDVF") {
            return Err(bad("signature is not \"TDVF\""));
        }
        let length = u32_le(header, 4).ok_or(bad("truncated header"))?;
        let version = u32_le(header, 8).ok_or(bad("truncated header"))?;
        let count = u32_le(header, 12).ok_or(bad("truncated header"))?;
        if version != 1 {
            return Err(bad("version is not 1"));
        }
        let needed = (count as u64)
            .checked_mul(32)
            .and_then(|n| n.checked_add(16));
        if needed.is_none_or(|n| n > u64::from(length) || n > header.len() as u64) {
            return Err(bad(
                "Length or the image is too short for NumberOfSectionEntries",
            ));
        }
        let mut sections = Vec::new();
        for index in 0..count as usize {
            let at = 16 + 32 * index;
            let bad = |what| TdvfError::BadSection { index, what };
            let (
                Some(data_offset),
                Some(raw_data_size),
                Some(memory_address),
                Some(memory_data_size),
                Some(ty),
                Some(attrs),
            ) = (
                u32_le(header, at),
                u32_le(header, at + 4),
                u64_le(header, at + 8),
                u64_le(header, at + 16),
                u32_le(header, at + 24),
                u32_le(header, at + 28),
            )
            else {
                return Err(bad("truncated"));
            };
            let section_type = TdvfSectionType::from_u32(ty)
                .ok_or(TdvfError::UnknownSectionType { index, value: ty })?;
            if attrs & !0b11 != 0 {
                return Err(TdvfError::UnknownAttributes {
                    index,
                    value: attrs,
                });
            }
            if memory_address % PAGE_SIZE != 0 || memory_data_size % PAGE_SIZE != 0 {
                return Err(bad("MemoryAddress or MemoryDataSize is not 4 KiB aligned"));
            }
            if memory_data_size > MAX_SECTION_MEMORY {
                return Err(bad("MemoryDataSize is above 4 GiB"));
            }
            if memory_address.checked_add(memory_data_size).is_none() {
                return Err(bad("MemoryAddress + MemoryDataSize overflows"));
            }
            if u64::from(raw_data_size) > memory_data_size {
                return Err(bad("RawDataSize exceeds MemoryDataSize"));
            }
            if (data_offset as usize)
                .checked_add(raw_data_size as usize)
                .is_none_or(|e| e > len)
            {
                return Err(bad(
                    "DataOffset + RawDataSize is beyond the end of the image",
                ));
            }
            sections.push(TdvfSection {
                data_offset,
                raw_data_size,
                memory_address,
                memory_data_size,
                section_type,
                mr_extend: attrs & 1 != 0,
                page_aug: attrs & 2 != 0,
            });
        }
        Ok(Self { fw, sections })
    }

    /// The sections in metadata order (the order the VMM adds them).
    pub fn sections(&self) -> &[TdvfSection] {
        &self.sections
    }

    /// The 256-byte chunk of guest memory at `offset` into `section` as the VMM loads it: image
    /// bytes up to `RawDataSize`, zeros after.
    pub(crate) fn chunk(&self, section: &TdvfSection, offset: u64) -> [u8; 256] {
        let mut out = [0u8; 256];
        let raw = u64::from(section.raw_data_size);
        if offset < raw {
            let n = (raw - offset).min(256) as usize;
            let start = (u64::from(section.data_offset) + offset) as usize;
            // In bounds: DataOffset + RawDataSize <= len was checked in `parse`.
            if let (Some(dst), Some(src)) = (out.get_mut(..n), reader::slice(self.fw, start, n)) {
                dst.copy_from_slice(src);
            }
        }
        out
    }
}

/// The TDX calculator's view of the OVMF footer table (walked by [`crate::ovmf_table`],
/// shared with SEV-SNP): the data of the table entry tagged `wanted`, or `None`.
fn find_entry<'a>(fw: &'a [u8], wanted: &[u8; 16]) -> Result<Option<&'a [u8]>, TdvfError> {
    let table = ovmf_table::parse(fw).map_err(|e| match e {
        TableError::TooSmall { len } => TdvfError::TooSmall { len },
        TableError::MissingFooter { offset } => TdvfError::NoFooterTable {
            offset: offset as u64,
        },
        TableError::BadTableLength { offset, length } => TdvfError::FooterTableLength {
            offset: offset as u64,
            total_len: usize::from(length),
        },
        TableError::BadEntryLength { offset, length } => TdvfError::FooterEntry {
            offset: offset as u64,
            entry_len: usize::from(length),
        },
        TableError::StrayTableBytes { offset, len } => TdvfError::FooterEntry {
            offset: offset as u64,
            entry_len: len,
        },
        TableError::DuplicateEntry { guid } => TdvfError::DuplicateFooterEntry {
            guid: ovmf_table::guid_string(&guid),
        },
    })?;
    Ok(table.into_iter().find(|(g, _)| g == wanted).map(|(_, d)| d))
}

//! OVMF firmware image: the reset-vector GUIDed footer table and the SEV metadata sections.
//!
//! Layout (edk2 `OvmfPkg/ResetVector`): the last 32 bytes of the image are the reset-vector
//! tail; just before them sits the table footer `{u16 total_len, GUID 96b582de-…}`. The table
//! body is the `total_len − 18` bytes before the footer, parsed backwards: each entry ends with
//! `{u16 entry_len, GUID}` and its data are the `entry_len − 18` bytes before that trailer.
//! The `OVMF_SEV_METADATA` entry holds the offset, from the end of the image, of an `"ASEV"`
//! header followed by `num_items × {u32 gpa, u32 size, u32 type}`.
//!
//! Every read is bounds-checked; malformed images give a [`FirmwareError`], never a panic.

use crate::ovmf_table::{self, guid, TableError};
use crate::reader;

/// The size of a guest page.
pub(crate) const PAGE_SIZE: usize = 4096;

/// The firmware is mapped so that it ends at 4 GiB.
const FOUR_GIB: u64 = 1 << 32;
/// `"ASEV", u32 size, u32 version, u32 num_items`.
const METADATA_HEADER: usize = 16;
/// `u32 gpa, u32 size, u32 type`.
const METADATA_ITEM: usize = 12;

/// `dc886566-984a-4798-a75e-5585a7bf67cc`: u32 offset from the end of the image to "ASEV".
const SEV_METADATA_GUID: [u8; 16] = guid(
    0xdc88_6566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
/// `00f771de-1a7e-4fcb-890e-68c77e2fb44e`: u32 reset EIP of the application processors.
const SEV_ES_RESET_BLOCK_GUID: [u8; 16] = guid(
    0x00f7_71de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// `7255371f-3a3b-4b04-927b-1da6efa8d454`: u32 GPA and u32 size of the SEV hashes table.
const SEV_HASH_TABLE_RV_GUID: [u8; 16] = guid(
    0x7255_371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);

/// Why a firmware image cannot be measured. Offsets are from the start of the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FirmwareError {
    /// The image is empty, larger than 4 GiB, or not a whole number of 4 KiB pages.
    #[error("firmware size {len} is not a non-zero multiple of 4096 bytes up to 4 GiB")]
    Size {
        /// Length of the image in bytes.
        len: usize,
    },
    /// No reset-vector table footer GUID at `len − 50` (not an OVMF image with SEV support,
    /// or a split `OVMF_CODE` image).
    #[error("no OVMF table footer GUID at offset {offset:#x}")]
    MissingFooter {
        /// Where the footer was expected.
        offset: usize,
    },
    /// The footer's total length is shorter than the footer or reaches before the image.
    #[error("OVMF table footer at {offset:#x} declares an impossible table length {length}")]
    BadTableLength {
        /// Offset of the footer.
        offset: usize,
        /// Declared total length.
        length: u16,
    },
    /// A table entry's length is shorter than its trailer or longer than what remains.
    #[error("OVMF table entry trailer at {offset:#x} declares an impossible length {length}")]
    BadEntryLength {
        /// Offset of the entry trailer.
        offset: usize,
        /// Declared entry length.
        length: u16,
    },
    /// The table body has bytes left that do not form an entry.
    #[error("OVMF table has {len} stray bytes at offset {offset:#x}")]
    StrayTableBytes {
        /// Offset of the table body.
        offset: usize,
        /// Number of bytes left.
        len: usize,
    },
    /// The same GUID appears twice in the table.
    #[error("OVMF table has two entries with GUID {guid}")]
    DuplicateEntry {
        /// The GUID, in canonical form.
        guid: String,
    },
    /// A known entry is too short for the value it must hold.
    #[error("OVMF table entry {name} has {len} data bytes, needs {needed}")]
    ShortEntry {
        /// Entry name (`SEV_ES_RESET_BLOCK`, …).
        name: &'static str,
        /// Data bytes present.
        len: usize,
        /// Data bytes needed.
        needed: usize,
    },
    /// The SEV metadata offset points outside the image or the header/items do not fit.
    #[error("SEV metadata at offset from end {offset_from_end:#x} does not fit in the image")]
    MetadataOutOfBounds {
        /// The offset from the end of the image, as stored in the table.
        offset_from_end: u32,
    },
    /// The metadata header does not start with `"ASEV"` or its version is not 1.
    #[error("SEV metadata header at {offset:#x}: bad {field}")]
    BadMetadataHeader {
        /// Offset of the header.
        offset: usize,
        /// `signature` or `version`.
        field: &'static str,
    },
    /// A metadata section has a type this crate does not know. New edk2 types must be added
    /// here deliberately: guessing how they are measured would give a wrong digest.
    #[error("SEV metadata section {index} has unknown type {value:#x}")]
    UnknownSectionType {
        /// Index of the section in the metadata.
        index: usize,
        /// The type value.
        value: u32,
    },
    /// A section measured page by page does not cover whole pages.
    #[error("SEV metadata section {index} ({kind:?}) size {size:#x} is not a multiple of 4096")]
    SectionSize {
        /// Index of the section.
        index: usize,
        /// Its type.
        kind: SectionType,
        /// Its size.
        size: u32,
    },
    /// Two sections cover the same guest memory.
    #[error("SEV metadata sections {first} and {second} overlap")]
    OverlappingSections {
        /// Index of the section with the lower GPA.
        first: usize,
        /// Index of the overlapping section.
        second: usize,
    },
}

/// The type of an SEV metadata section (edk2 `OvmfSevMetadata.asm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SectionType {
    /// 1: memory OVMF's SEC phase uses, pre-validated as zero pages.
    SnpSecMem,
    /// 2: the SNP secrets page.
    SnpSecrets,
    /// 3: the CPUID page.
    Cpuid,
    /// 4: the SVSM calling-area page, pre-validated as zero pages.
    SvsmCaa,
    /// 0x10: the page holding QEMU's SEV hashes table (`kernel-hashes=on`).
    SnpKernelHashes,
}

impl SectionType {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::SnpSecMem,
            2 => Self::SnpSecrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::SnpKernelHashes,
            _ => return None,
        })
    }

    /// The edk2 name of the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::SnpSecMem => "SNP_SEC_MEM",
            Self::SnpSecrets => "SNP_SECRETS",
            Self::Cpuid => "CPUID",
            Self::SvsmCaa => "SVSM_CAA",
            Self::SnpKernelHashes => "SNP_KERNEL_HASHES",
        }
    }
}

/// One SEV metadata section: a guest-physical range the VMM prepares before launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// Guest-physical address of the first byte.
    pub gpa: u32,
    /// Size in bytes.
    pub size: u32,
    /// What the VMM puts there.
    pub kind: SectionType,
}

/// Where OVMF expects QEMU's SEV hashes table (`SEV_HASH_TABLE_RV` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashTableLocation {
    /// Guest-physical address of the table (0 means the build reserved none).
    pub gpa: u32,
    /// Reserved size in bytes, if the entry records one.
    pub size: Option<u32>,
}

/// A parsed OVMF image, borrowing its bytes.
#[derive(Debug, Clone)]
pub struct Firmware<'a> {
    data: &'a [u8],
    sections: Vec<Section>,
    sev_es_reset_eip: Option<u32>,
    hash_table: Option<HashTableLocation>,
}

impl<'a> Firmware<'a> {
    /// Parses the footer table and SEV metadata of an OVMF image (the whole `OVMF.fd` /
    /// `OVMF.amdsev.fd`, as given to QEMU with `-bios`).
    ///
    /// An image without an SEV metadata entry has no sections (as in sev-snp-measure).
    pub fn parse(data: &'a [u8]) -> Result<Self, FirmwareError> {
        let len = data.len();
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) || len as u64 > FOUR_GIB {
            return Err(FirmwareError::Size { len });
        }
        let table = ovmf_table::parse(data).map_err(FirmwareError::from)?;
        let find = |g: &[u8; 16]| table.iter().find(|(guid, _)| guid == g).map(|(_, d)| *d);

        let sev_es_reset_eip = match find(&SEV_ES_RESET_BLOCK_GUID) {
            Some(d) => Some(reader::u32_le(d, 0).ok_or(FirmwareError::ShortEntry {
                name: "SEV_ES_RESET_BLOCK",
                len: d.len(),
                needed: 4,
            })?),
            None => None,
        };
        let hash_table = match find(&SEV_HASH_TABLE_RV_GUID) {
            Some(d) => Some(HashTableLocation {
                gpa: reader::u32_le(d, 0).ok_or(FirmwareError::ShortEntry {
                    name: "SEV_HASH_TABLE_RV",
                    len: d.len(),
                    needed: 4,
                })?,
                size: reader::u32_le(d, 4),
            }),
            None => None,
        };
        let sections = match find(&SEV_METADATA_GUID) {
            Some(d) => {
                let off = reader::u32_le(d, 0).ok_or(FirmwareError::ShortEntry {
                    name: "OVMF_SEV_METADATA",
                    len: d.len(),
                    needed: 4,
                })?;
                parse_metadata(data, off)?
            }
            None => Vec::new(),
        };
        Ok(Self {
            data,
            sections,
            sev_es_reset_eip,
            hash_table,
        })
    }

    /// The image bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The guest-physical address of the first byte: the image ends at 4 GiB.
    pub fn gpa(&self) -> u64 {
        // `parse` checked len <= 4 GiB.
        FOUR_GIB - self.data.len() as u64
    }

    /// The SEV metadata sections, in table order (the order they are measured in).
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Whether some section has type `kind`.
    pub fn has_section(&self, kind: SectionType) -> bool {
        self.sections.iter().any(|s| s.kind == kind)
    }

    /// The application processors' reset EIP from `SEV_ES_RESET_BLOCK`, if the entry exists.
    pub fn sev_es_reset_eip(&self) -> Option<u32> {
        self.sev_es_reset_eip
    }

    /// The `SEV_HASH_TABLE_RV` entry, if present.
    pub fn hash_table(&self) -> Option<HashTableLocation> {
        self.hash_table
    }
}

impl From<TableError> for FirmwareError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::TooSmall { .. } => FirmwareError::MissingFooter { offset: 0 },
            TableError::MissingFooter { offset } => FirmwareError::MissingFooter { offset },
            TableError::BadTableLength { offset, length } => {
                FirmwareError::BadTableLength { offset, length }
            }
            TableError::BadEntryLength { offset, length } => {
                FirmwareError::BadEntryLength { offset, length }
            }
            TableError::StrayTableBytes { offset, len } => {
                FirmwareError::StrayTableBytes { offset, len }
            }
            TableError::DuplicateEntry { guid } => FirmwareError::DuplicateEntry {
                guid: ovmf_table::guid_string(&guid),
            },
        }
    }
}

fn parse_metadata(data: &[u8], offset_from_end: u32) -> Result<Vec<Section>, FirmwareError> {
    let oob = FirmwareError::MetadataOutOfBounds { offset_from_end };
    let start = data
        .len()
        .checked_sub(offset_from_end as usize)
        .ok_or(oob.clone())?;
    let header = reader::slice(data, start, METADATA_HEADER).ok_or(oob.clone())?;
    if header.get(..4) != Some(b"ASEV".as_slice()) {
        return Err(FirmwareError::BadMetadataHeader {
            offset: start,
            field: "signature",
        });
    }
    let size = reader::u32_le(header, 4).ok_or(oob.clone())? as usize;
    if reader::u32_le(header, 8) != Some(1) {
        return Err(FirmwareError::BadMetadataHeader {
            offset: start,
            field: "version",
        });
    }
    let count = reader::u32_le(header, 12).ok_or(oob.clone())? as usize;
    let items_len = size.checked_sub(METADATA_HEADER).ok_or(oob.clone())?;
    let items = reader::slice(data, start + METADATA_HEADER, items_len).ok_or(oob.clone())?;
    let needed = count.checked_mul(METADATA_ITEM).ok_or(oob.clone())?;
    if needed > items.len() {
        return Err(oob);
    }

    let mut sections = Vec::with_capacity(count);
    for (index, item) in items.chunks_exact(METADATA_ITEM).take(count).enumerate() {
        let field = |o| reader::u32_le(item, o).unwrap_or_default();
        let (gpa, size, value) = (field(0), field(4), field(8));
        let kind = SectionType::from_u32(value)
            .ok_or(FirmwareError::UnknownSectionType { index, value })?;
        let paged = matches!(
            kind,
            SectionType::SnpSecMem | SectionType::SvsmCaa | SectionType::SnpKernelHashes
        );
        if paged && !(size as usize).is_multiple_of(PAGE_SIZE) {
            return Err(FirmwareError::SectionSize { index, kind, size });
        }
        sections.push(Section { gpa, size, kind });
    }
    check_overlaps(&sections)?;
    Ok(sections)
}

/// Rejects two non-empty sections whose `[gpa, gpa + size)` ranges intersect.
fn check_overlaps(sections: &[Section]) -> Result<(), FirmwareError> {
    let mut ranges: Vec<(u64, u64, usize)> = sections
        .iter()
        .enumerate()
        .filter(|(_, s)| s.size > 0)
        .map(|(i, s)| (u64::from(s.gpa), u64::from(s.gpa) + u64::from(s.size), i))
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if let [(_, end, first), (start, _, second)] = w {
            if start < end {
                return Err(FirmwareError::OverlappingSections {
                    first: *first,
                    second: *second,
                });
            }
        }
    }
    Ok(())
}

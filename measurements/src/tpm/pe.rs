//! PE/COFF parsing (bounds-checked) and the Authenticode image hash.
//!
//! Layout from the Microsoft "PE Format" specification: `e_lfanew` at 0x3C, the `PE\0\0`
//! signature, the 20-byte COFF header, the optional header (PE32 magic 0x10B or PE32+ 0x20B)
//! with `SizeOfHeaders` at +60, `CheckSum` at +64 and the data directories at +96 (PE32) or
//! +112 (PE32+), then the 40-byte section headers. The Authenticode hash is the one described
//! in "Windows Authenticode Portable Executable Signature Format" §"Calculating the PE Image
//! Hash", as edk2's `DxeTpm2MeasureBootLib` computes it for `EV_EFI_BOOT_SERVICES_APPLICATION`:
//! no zero padding is appended to files whose length is not a multiple of 8.

use super::pcr::Bank;
use crate::reader;

/// Why bytes are not a PE image this crate can hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeError {
    /// A field lies beyond the end of the file.
    #[error("PE field {field} at offset {offset:#x} is beyond the end of the {len}-byte file")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Its offset in the file.
        offset: u64,
        /// The file length.
        len: usize,
    },
    /// The file does not start with `MZ`.
    #[error("not a PE image: no MZ signature at offset 0")]
    NoDosSignature,
    /// `e_lfanew` does not point at `PE\0\0`.
    #[error("not a PE image: no PE\\0\\0 signature at e_lfanew = {offset:#x}")]
    NoPeSignature {
        /// The value of `e_lfanew`.
        offset: u32,
    },
    /// The optional header magic is neither PE32 nor PE32+.
    #[error("unknown optional-header magic {magic:#06x} at offset {offset:#x}")]
    BadMagic {
        /// The magic found.
        magic: u16,
        /// Its offset.
        offset: u64,
    },
    /// The header regions Authenticode hashes are out of order or beyond `SizeOfHeaders`.
    #[error("PE header layout is inconsistent: {what}")]
    HeaderLayout {
        /// Which constraint failed.
        what: &'static str,
    },
    /// A section's raw data lies outside the file.
    #[error(
        "section #{index} ({name}) raw data {offset:#x}+{size:#x} is beyond the end of the {len}-byte file"
    )]
    SectionOutOfFile {
        /// Section index in the section table.
        index: usize,
        /// Section name.
        name: String,
        /// `PointerToRawData`.
        offset: u32,
        /// `SizeOfRawData`.
        size: u32,
        /// The file length.
        len: usize,
    },
    /// The certificate table does not fit between the hashed data and the end of the file.
    #[error("certificate table {offset:#x}+{size:#x} does not fit in the {len}-byte file")]
    CertificateTable {
        /// Its file offset (`VirtualAddress` of the security directory).
        offset: u32,
        /// Its size.
        size: u32,
        /// The file length.
        len: usize,
    },
}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeSection {
    /// Index in the section table.
    pub index: usize,
    /// The 8-byte name field with trailing NULs removed (may be non-UTF-8).
    pub name: Vec<u8>,
    /// `VirtualSize`: the section's size in memory.
    pub virtual_size: u32,
    /// `VirtualAddress` (RVA).
    pub virtual_address: u32,
    /// `SizeOfRawData`.
    pub size_of_raw_data: u32,
    /// `PointerToRawData`.
    pub pointer_to_raw_data: u32,
}

impl PeSection {
    /// The name as text, lossily (for messages).
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A parsed PE image: the offsets Authenticode needs and the section table. Construction checks
/// every range, so hashing cannot fail afterwards.
#[derive(Debug, Clone)]
pub struct PeFile<'a> {
    data: &'a [u8],
    checksum_offset: usize,
    /// Offset of the 8-byte security data-directory entry, if the image has one.
    cert_dir_offset: Option<usize>,
    size_of_headers: usize,
    cert_size: usize,
    sections: Vec<PeSection>,
}

/// The `N` bytes of `field` at `offset` ([`reader::array`]), or the error naming the field.
fn read<const N: usize>(
    data: &[u8],
    offset: usize,
    field: &'static str,
) -> Result<[u8; N], PeError> {
    reader::array(data, offset).ok_or(truncated(data, offset, field))
}

fn u16_at(data: &[u8], offset: usize, field: &'static str) -> Result<u16, PeError> {
    reader::u16_le(data, offset).ok_or(truncated(data, offset, field))
}

fn u32_at(data: &[u8], offset: usize, field: &'static str) -> Result<u32, PeError> {
    reader::u32_le(data, offset).ok_or(truncated(data, offset, field))
}

fn truncated(data: &[u8], offset: usize, field: &'static str) -> PeError {
    PeError::Truncated {
        field,
        offset: offset as u64,
        len: data.len(),
    }
}

fn add(a: usize, b: usize, field: &'static str, len: usize) -> Result<usize, PeError> {
    a.checked_add(b).ok_or(PeError::Truncated {
        field,
        offset: u64::MAX,
        len,
    })
}

impl<'a> PeFile<'a> {
    /// Parses the headers and section table of `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self, PeError> {
        let len = data.len();
        if read::<2>(data, 0, "MZ signature")? != *b"MZ" {
            return Err(PeError::NoDosSignature);
        }
        let lfanew = u32_at(data, 0x3c, "e_lfanew")?;
        let pe = lfanew as usize;
        if read::<4>(data, pe, "PE signature")? != *b"PE\0\0" {
            return Err(PeError::NoPeSignature { offset: lfanew });
        }
        let coff = add(pe, 4, "COFF header", len)?;
        let num_sections = u16_at(
            data,
            add(coff, 2, "NumberOfSections", len)?,
            "NumberOfSections",
        )?;
        let opt_size = u16_at(
            data,
            add(coff, 16, "SizeOfOptionalHeader", len)?,
            "SizeOfOptionalHeader",
        )?;
        let opt = add(coff, 20, "optional header", len)?;
        let magic = u16_at(data, opt, "optional header magic")?;
        let (rva_count_at, dirs_at) = match magic {
            0x10b => (92, 96),
            0x20b => (108, 112),
            _ => {
                return Err(PeError::BadMagic {
                    magic,
                    offset: opt as u64,
                })
            }
        };
        let size_of_headers =
            u32_at(data, add(opt, 60, "SizeOfHeaders", len)?, "SizeOfHeaders")? as usize;
        let checksum_offset = add(opt, 64, "CheckSum", len)?;
        u32_at(data, checksum_offset, "CheckSum")?;
        let rva_count = u32_at(
            data,
            add(opt, rva_count_at, "NumberOfRvaAndSizes", len)?,
            "NumberOfRvaAndSizes",
        )?;
        let (cert_dir_offset, cert_addr, cert_size) = if rva_count > 4 {
            let at = add(opt, dirs_at + 4 * 8, "security directory", len)?;
            // The directory entry must lie inside the optional header.
            if at.checked_add(8) > opt.checked_add(opt_size as usize) {
                return Err(PeError::HeaderLayout {
                    what: "security directory beyond SizeOfOptionalHeader",
                });
            }
            (
                Some(at),
                u32_at(data, at, "security directory address")?,
                u32_at(data, at + 4, "security directory size")?,
            )
        } else {
            (None, 0, 0)
        };
        let hashed_header_end = cert_dir_offset.map_or(checksum_offset + 4, |c| c + 8);
        if hashed_header_end > size_of_headers {
            return Err(PeError::HeaderLayout {
                what: "CheckSum or security directory beyond SizeOfHeaders",
            });
        }
        if size_of_headers > len {
            return Err(PeError::HeaderLayout {
                what: "SizeOfHeaders beyond the end of the file",
            });
        }
        let table = add(opt, opt_size as usize, "section table", len)?;
        let mut sections = Vec::new();
        for index in 0..num_sections as usize {
            let at = add(table, index * 40, "section header", len)?;
            let name_raw = read::<8>(data, at, "section name")?;
            let name_len = name_raw.iter().position(|&b| b == 0).unwrap_or(8);
            let s = PeSection {
                index,
                name: name_raw.get(..name_len).unwrap_or_default().to_vec(),
                virtual_size: u32_at(data, at + 8, "VirtualSize")?,
                virtual_address: u32_at(data, at + 12, "VirtualAddress")?,
                size_of_raw_data: u32_at(data, at + 16, "SizeOfRawData")?,
                pointer_to_raw_data: u32_at(data, at + 20, "PointerToRawData")?,
            };
            let end = (s.pointer_to_raw_data as usize).checked_add(s.size_of_raw_data as usize);
            if s.size_of_raw_data != 0 && end.is_none_or(|e| e > len) {
                return Err(PeError::SectionOutOfFile {
                    index,
                    name: s.name_lossy(),
                    offset: s.pointer_to_raw_data,
                    size: s.size_of_raw_data,
                    len,
                });
            }
            sections.push(s);
        }
        let cert_size = cert_size as usize;
        if cert_size != 0
            && (cert_addr as usize)
                .checked_add(cert_size)
                .is_none_or(|e| e > len)
        {
            return Err(PeError::CertificateTable {
                offset: cert_addr,
                size: cert_size as u32,
                len,
            });
        }
        Ok(Self {
            data,
            checksum_offset,
            cert_dir_offset,
            size_of_headers,
            cert_size,
            sections,
        })
    }

    /// The section headers, in table order.
    pub fn sections(&self) -> &[PeSection] {
        &self.sections
    }

    /// The first section called `name` (e.g. `.linux`).
    pub fn section(&self, name: &str) -> Option<&PeSection> {
        self.sections.iter().find(|s| s.name == name.as_bytes())
    }

    /// The section's raw bytes (`SizeOfRawData` from `PointerToRawData`; checked at parse).
    pub fn raw_data(&self, section: &PeSection) -> &'a [u8] {
        let start = section.pointer_to_raw_data as usize;
        reader::slice(self.data, start, section.size_of_raw_data as usize).unwrap_or_default()
    }

    /// The Authenticode hash of the image in bank `D`.
    pub fn authenticode<D: Bank>(&self) -> D {
        let d = self.data;
        let mut parts: Vec<&[u8]> = Vec::new();
        // Every range below was checked in `parse`; `get` keeps this panic-free regardless.
        let mut header = |from: usize, to: usize| {
            parts.push(reader::slice(d, from, to.saturating_sub(from)).unwrap_or_default())
        };
        match self.cert_dir_offset {
            Some(cert) => {
                header(0, self.checksum_offset);
                header(self.checksum_offset + 4, cert);
                header(cert + 8, self.size_of_headers);
            }
            None => {
                header(0, self.checksum_offset);
                header(self.checksum_offset + 4, self.size_of_headers);
            }
        }
        let mut sorted: Vec<&PeSection> = self
            .sections
            .iter()
            .filter(|s| s.size_of_raw_data != 0)
            .collect();
        sorted.sort_by_key(|s| s.pointer_to_raw_data);
        let mut hashed = self.size_of_headers;
        for s in sorted {
            parts.push(self.raw_data(s));
            hashed = hashed.saturating_add(s.size_of_raw_data as usize);
        }
        // Trailing data: everything after the hashed bytes except the certificate table
        // (edk2: `ImageSize - CertSize - SumOfBytesHashed`).
        let end = d.len().saturating_sub(self.cert_size);
        if end > hashed {
            parts.push(reader::slice(d, hashed, end - hashed).unwrap_or_default());
        }
        D::hash_parts(parts)
    }
}

/// The Authenticode hash of the PE image `pe` in bank `D` (`Sha256Digest` or `Sha384Digest`).
///
/// ```
/// use measurements::{tpm::authenticode, Sha256Digest};
/// assert!(authenticode::<Sha256Digest>(b"not a PE").is_err());
/// ```
pub fn authenticode<D: Bank>(pe: &[u8]) -> Result<D, PeError> {
    Ok(PeFile::parse(pe)?.authenticode())
}

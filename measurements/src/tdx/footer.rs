//! The OVMF reset-vector GUIDed table ("footer table"), walked backwards from the end of the
//! image (edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`).
//!
//! The last 32 bytes are the reset vector; just before them sits `{u16 total_len, GUID
//! 96b582de-1fb2-45f7-baea-a366c55a082d}`, and `total_len` (which includes those 18 bytes)
//! covers the table. Each entry ends with `{u16 entry_len, GUID}`; its data is the
//! `entry_len − 18` bytes before that trailer.
//!
//! The SEV-SNP module walks the same table; the two copies are to be unified by the integrator.

use super::tdvf::TdvfError;

/// A GUID in EFI mixed-endian byte order (the first three fields little-endian).
pub(crate) const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// `96b582de-1fb2-45f7-baea-a366c55a082d`: the table footer.
const FOOTER_GUID: [u8; 16] = guid(
    0x96b582de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);

/// Size of the reset-vector tail after the table.
const RESET_VECTOR_TAIL: usize = 32;
/// Size of an entry trailer (and of the footer): `u16` length and a GUID.
const TRAILER: usize = 18;

/// The data of the table entry tagged `wanted`, or `None` if the table has no such entry.
pub(crate) fn find_entry<'a>(
    fw: &'a [u8],
    wanted: &[u8; 16],
) -> Result<Option<&'a [u8]>, TdvfError> {
    let footer_end = fw
        .len()
        .checked_sub(RESET_VECTOR_TAIL)
        .ok_or(TdvfError::TooSmall { len: fw.len() })?;
    let footer_start = footer_end
        .checked_sub(TRAILER)
        .ok_or(TdvfError::TooSmall { len: fw.len() })?;
    let footer = fw
        .get(footer_start..footer_end)
        .ok_or(TdvfError::TooSmall { len: fw.len() })?;
    let (len_bytes, footer_guid) = footer
        .split_at_checked(2)
        .ok_or(TdvfError::TooSmall { len: fw.len() })?;
    if footer_guid != FOOTER_GUID {
        return Err(TdvfError::NoFooterTable {
            offset: footer_start as u64,
        });
    }
    let total_len = u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize;
    let table_start = total_len
        .checked_sub(TRAILER)
        .and_then(|body| footer_start.checked_sub(body))
        .ok_or(TdvfError::FooterTableLength {
            offset: footer_start as u64,
            total_len,
        })?;
    let mut pos = footer_start;
    while pos > table_start {
        let trailer_start = pos
            .checked_sub(TRAILER)
            .filter(|&t| t >= table_start)
            .ok_or(TdvfError::FooterEntry {
                offset: pos as u64,
                entry_len: 0,
            })?;
        let trailer = fw.get(trailer_start..pos).ok_or(TdvfError::FooterEntry {
            offset: pos as u64,
            entry_len: 0,
        })?;
        let (len_bytes, guid) = trailer.split_at_checked(2).ok_or(TdvfError::FooterEntry {
            offset: pos as u64,
            entry_len: 0,
        })?;
        let entry_len = u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let entry_start = pos
            .checked_sub(entry_len)
            .filter(|&s| entry_len >= TRAILER && s >= table_start)
            .ok_or(TdvfError::FooterEntry {
                offset: trailer_start as u64,
                entry_len,
            })?;
        if guid == wanted {
            return Ok(fw.get(entry_start..trailer_start));
        }
        pos = entry_start;
    }
    Ok(None)
}

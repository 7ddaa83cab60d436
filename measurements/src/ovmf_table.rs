//! The OVMF reset-vector GUIDed table ("footer table"), shared by the SEV-SNP and TDX
//! calculators (edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`).
//!
//! The last 32 bytes of the image are the reset-vector tail; just before them sits the footer
//! `{u16 total_len, GUID 96b582de-1fb2-45f7-baea-a366c55a082d}`. The table body is the
//! `total_len − 18` bytes before the footer, parsed backwards: each entry ends with
//! `{u16 entry_len, GUID}` and its data are the `entry_len − 18` bytes before that trailer.
//! Every read is bounds-checked; each caller maps [`TableError`] to its own error type.

use crate::reader;

/// Bytes after the footer table (the reset-vector tail).
const RESET_VECTOR_TAIL: usize = 32;
/// `{u16 length, GUID}`: the trailer of every table entry and the footer itself.
const TRAILER: usize = 18;

/// Builds the on-disk (EFI mixed-endian, `uuid.bytes_le`) form of a GUID from its fields.
pub(crate) const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// `96b582de-1fb2-45f7-baea-a366c55a082d`: footer of the reset-vector GUIDed table.
pub(crate) const FOOTER_GUID: [u8; 16] = guid(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);

/// A table entry: its on-disk GUID and its data.
pub(crate) type Entry<'a> = ([u8; 16], &'a [u8]);

/// Why the table could not be read (offsets are from the start of the image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableError {
    /// The image cannot hold a footer and the reset-vector tail.
    TooSmall { len: usize },
    /// No footer GUID where the footer must be.
    MissingFooter { offset: usize },
    /// The footer's total length is shorter than the footer or reaches before the image.
    BadTableLength { offset: usize, length: u16 },
    /// An entry's length is shorter than its trailer or longer than what remains.
    BadEntryLength { offset: usize, length: u16 },
    /// Bytes left in the body that do not form an entry.
    StrayTableBytes { offset: usize, len: usize },
    /// The same GUID twice.
    DuplicateEntry { guid: [u8; 16] },
}

/// Every entry of the table, from the footer backwards. Malformed tables and repeated GUIDs
/// are errors.
pub(crate) fn parse(data: &[u8]) -> Result<Vec<Entry<'_>>, TableError> {
    let len = data.len();
    let footer = len
        .checked_sub(RESET_VECTOR_TAIL + TRAILER)
        .ok_or(TableError::TooSmall { len })?;
    let guid: Option<[u8; 16]> = reader::array(data, footer + 2);
    if guid != Some(FOOTER_GUID) {
        return Err(TableError::MissingFooter { offset: footer });
    }
    let total = reader::u16_le(data, footer).ok_or(TableError::MissingFooter { offset: footer })?;
    let bad_total = TableError::BadTableLength {
        offset: footer,
        length: total,
    };
    let body_len = usize::from(total)
        .checked_sub(TRAILER)
        .ok_or(bad_total.clone())?;
    let body_start = footer.checked_sub(body_len).ok_or(bad_total.clone())?;
    let mut body = reader::slice(data, body_start, body_len).ok_or(bad_total)?;

    let mut entries: Vec<Entry<'_>> = Vec::new();
    while !body.is_empty() {
        let stray = TableError::StrayTableBytes {
            offset: body_start,
            len: body.len(),
        };
        let trailer = body.len().checked_sub(TRAILER).ok_or(stray.clone())?;
        let elen = reader::u16_le(body, trailer).ok_or(stray)?;
        let bad = TableError::BadEntryLength {
            offset: body_start + trailer,
            length: elen,
        };
        let guid: [u8; 16] = reader::array(body, trailer + 2).ok_or(bad.clone())?;
        let data_len = usize::from(elen).checked_sub(TRAILER).ok_or(bad.clone())?;
        let data_start = trailer.checked_sub(data_len).ok_or(bad.clone())?;
        let entry = reader::slice(body, data_start, data_len).ok_or(bad)?;
        if entries.iter().any(|(g, _)| *g == guid) {
            return Err(TableError::DuplicateEntry { guid });
        }
        entries.push((guid, entry));
        body = reader::slice(body, 0, data_start).unwrap_or_default();
    }
    Ok(entries)
}

/// The canonical text form of an on-disk GUID.
pub(crate) fn guid_string(g: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}-{}",
        g[3],
        g[2],
        g[1],
        g[0],
        g[5],
        g[4],
        g[7],
        g[6],
        hex::encode(&g[8..10]),
        hex::encode(&g[10..16])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_encoding_is_efi_mixed_endian() {
        // uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
        assert_eq!(hex::encode(FOOTER_GUID), "de82b596b21ff745baeaa366c55a082d");
        assert_eq!(
            guid_string(&FOOTER_GUID),
            "96b582de-1fb2-45f7-baea-a366c55a082d"
        );
    }
}

//! The TDX calculator's view of the OVMF footer table (walked by [`crate::ovmf_table`], shared
//! with SEV-SNP): find one entry, with table problems as [`TdvfError`]s.

use super::tdvf::TdvfError;
use crate::ovmf_table::{self, TableError};

pub(crate) use crate::ovmf_table::guid;

/// The data of the table entry tagged `wanted`, or `None` if the table has no such entry.
pub(crate) fn find_entry<'a>(
    fw: &'a [u8],
    wanted: &[u8; 16],
) -> Result<Option<&'a [u8]>, TdvfError> {
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

//! QEMU's SEV hashes table (`kernel-hashes=on`): SHA-256 of the kernel, initrd and command
//! line, which OVMF checks before booting them (measured direct boot).

use super::ovmf::PAGE_SIZE;
use crate::Sha256Digest;

/// Header GUID `9438d606-4f22-4cc9-b479-a793d411fd21`, on-disk byte order.
const TABLE_GUID: [u8; 16] = [
    0x06, 0xd6, 0x38, 0x94, 0x22, 0x4f, 0xc9, 0x4c, 0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21,
];
/// Command-line entry GUID `97d02dd8-bd20-4c94-aa78-e7714d36ab2a`.
const CMDLINE_GUID: [u8; 16] = [
    0xd8, 0x2d, 0xd0, 0x97, 0x20, 0xbd, 0x94, 0x4c, 0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a,
];
/// Initrd entry GUID `44baf731-3a2f-4bd7-9af1-41e29169781d`.
const INITRD_GUID: [u8; 16] = [
    0x31, 0xf7, 0xba, 0x44, 0x2f, 0x3a, 0xd7, 0x4b, 0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d,
];
/// Kernel entry GUID `4de79437-abd2-427f-b835-d5b172d2045b`.
const KERNEL_GUID: [u8; 16] = [
    0x37, 0x94, 0xe7, 0x4d, 0xd2, 0xab, 0x7f, 0x42, 0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b,
];

/// `{GUID, u16 length, sha256}`.
const ENTRY_LEN: usize = 16 + 2 + 32;
/// `{GUID, u16 length}` followed by the cmdline, initrd and kernel entries: 168 bytes.
const TABLE_LEN: usize = 16 + 2 + 3 * ENTRY_LEN;
/// The table zero-padded to a multiple of 16 bytes, as QEMU copies it: 176 bytes. Changing
/// this changes every kernel-hashes measurement.
pub const PADDED_TABLE_LEN: usize = TABLE_LEN.div_ceil(16) * 16;

/// The three SHA-256 digests QEMU puts in the SEV hashes table.
///
/// Clients that only hold digests fill the fields directly; [`KernelHashes::from_bytes`]
/// computes them from the files QEMU gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelHashes {
    /// SHA-256 of the `-kernel` file as given.
    pub kernel: Sha256Digest,
    /// SHA-256 of the `-initrd` file; SHA-256 of nothing when there is none.
    pub initrd: Sha256Digest,
    /// SHA-256 of the `-append` bytes followed by one NUL; see [`KernelHashes::cmdline_hash`].
    pub cmdline: Sha256Digest,
}

impl KernelHashes {
    /// Hashes the kernel, optional initrd and optional command line as QEMU does.
    pub fn from_bytes(kernel: &[u8], initrd: Option<&[u8]>, cmdline: Option<&str>) -> Self {
        Self {
            kernel: Sha256Digest::of(kernel),
            initrd: Sha256Digest::of(initrd.unwrap_or_default()),
            cmdline: Self::cmdline_hash(cmdline.unwrap_or_default()),
        }
    }

    /// SHA-256 of `cmdline` followed by a NUL byte (an absent command line is `""`).
    pub fn cmdline_hash(cmdline: &str) -> Sha256Digest {
        let mut b = Vec::with_capacity(cmdline.len() + 1);
        b.extend_from_slice(cmdline.as_bytes());
        b.push(0);
        Sha256Digest::of(&b)
    }

    /// The padded table (176 bytes) as QEMU writes it into guest memory.
    pub fn table(&self) -> [u8; PADDED_TABLE_LEN] {
        let mut t = [0u8; PADDED_TABLE_LEN];
        t[..16].copy_from_slice(&TABLE_GUID);
        t[16..18].copy_from_slice(&(TABLE_LEN as u16).to_le_bytes());
        let entries = [
            (CMDLINE_GUID, &self.cmdline),
            (INITRD_GUID, &self.initrd),
            (KERNEL_GUID, &self.kernel),
        ];
        for (i, (guid, digest)) in entries.iter().enumerate() {
            let at = 18 + i * ENTRY_LEN;
            t[at..at + 16].copy_from_slice(guid);
            t[at + 16..at + 18].copy_from_slice(&(ENTRY_LEN as u16).to_le_bytes());
            t[at + 18..at + ENTRY_LEN].copy_from_slice(digest.as_bytes());
        }
        t
    }

    /// A zero page with the padded table at `offset`, or `None` if the table would not fit.
    pub fn page(&self, offset: usize) -> Option<[u8; PAGE_SIZE]> {
        let end = offset
            .checked_add(PADDED_TABLE_LEN)
            .filter(|e| *e <= PAGE_SIZE)?;
        let mut p = [0u8; PAGE_SIZE];
        p.get_mut(offset..end)?.copy_from_slice(&self.table());
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_layout() {
        assert_eq!(TABLE_LEN, 168);
        assert_eq!(PADDED_TABLE_LEN, 176);
        let h = KernelHashes::from_bytes(b"", None, None);
        // SHA-256("\0"), the hash of an absent command line.
        assert_eq!(
            h.cmdline.to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert!(h.page(4096 - 176).is_some());
        assert!(h.page(4096 - 175).is_none());
    }
}

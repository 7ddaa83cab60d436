//! EROFS on-disk structures: fixed-layout little-endian records, declared once and used by
//! both the writer and the reader.
//!
//! Source: the Linux kernel's `fs/erofs/erofs_fs.h` (the format's only specification) and
//! erofs-utils 1.5 `include/erofs_fs.h`. Every field this crate writes is listed; fields of
//! features it never uses (compression, chunks, extra devices, shared xattrs) are written as
//! zero and rejected by the reader where they change how bytes are interpreted.
//!
//! The parsers here read through [`measurements::reader`]: a short or hostile record is
//! `None`, never a panic.

use measurements::reader;

/// Byte offset of the superblock in the image (`EROFS_SUPER_OFFSET`).
pub const SUPER_OFFSET: usize = 1024;
/// Superblock magic (`EROFS_SUPER_MAGIC_V1`).
pub const SUPER_MAGIC: u32 = 0xE0F5_E1E2;
/// Size of the superblock record (`struct erofs_super_block`).
pub const SUPER_SIZE: usize = 128;
/// `feature_compat` bit: extended inodes carry a valid mtime (`EROFS_FEATURE_COMPAT_MTIME`).
pub const FEATURE_COMPAT_MTIME: u32 = 0x2;
/// `feature_compat` bit: the superblock carries a crc32c (`EROFS_FEATURE_COMPAT_SB_CHKSUM`).
pub const FEATURE_COMPAT_SB_CHKSUM: u32 = 0x1;

/// Inodes are addressed in 32-byte slots: `nid = byte offset in the metadata area / 32`.
pub const INODE_SLOT: usize = 32;
/// `struct erofs_inode_compact` size.
pub const COMPACT_INODE_SIZE: usize = 32;
/// `struct erofs_inode_extended` size.
pub const EXTENDED_INODE_SIZE: usize = 64;

/// `i_format` bit 0: 0 = compact inode, 1 = extended inode.
pub const INODE_VERSION_EXTENDED: u16 = 1;
/// `i_format` bits 1..4: data layout, shifted left by this.
pub const INODE_DATALAYOUT_SHIFT: u16 = 1;
/// Data layout: `EROFS_INODE_FLAT_PLAIN`, contiguous blocks from `raw_blkaddr`.
pub const DATALAYOUT_FLAT_PLAIN: u16 = 0;
/// Data layout: `EROFS_INODE_FLAT_INLINE`, full blocks from `raw_blkaddr`, the tail right
/// after the inode and its xattrs, never crossing a block boundary.
pub const DATALAYOUT_FLAT_INLINE: u16 = 2;

/// `struct erofs_dirent` size: `nid: le64, nameoff: le16, file_type: u8, reserved: u8`.
pub const DIRENT_SIZE: usize = 12;
/// Longest name a directory entry may carry (`EROFS_NAME_LEN`).
pub const NAME_LEN: usize = 255;

/// `struct erofs_xattr_ibody_header` size (`h_reserved: le32, h_shared_count: u8, 7 reserved`).
pub const XATTR_IBODY_HEADER_SIZE: usize = 12;
/// `struct erofs_xattr_entry` size (`e_name_len: u8, e_name_index: u8, e_value_size: le16`).
pub const XATTR_ENTRY_SIZE: usize = 4;
/// Xattr entries are padded to this alignment (`EROFS_XATTR_ALIGN`).
pub const XATTR_ALIGN: usize = 4;

/// Name prefixes the kernel and erofs-utils 1.5 resolve from `e_name_index`
/// (`EROFS_XATTR_INDEX_*`). An index of 0 is not listed or found by the kernel, so a name
/// without one of these prefixes cannot be stored.
pub const XATTR_PREFIXES: [(u8, &[u8]); 5] = [
    (1, b"user."),
    (2, b"system.posix_acl_access"),
    (3, b"system.posix_acl_default"),
    (4, b"trusted."),
    (6, b"security."),
];

/// Linux file type bits (`S_IFMT` and friends), stored in `i_mode`.
pub mod mode {
    /// File type mask.
    pub const S_IFMT: u16 = 0o170000;
    /// Socket.
    pub const S_IFSOCK: u16 = 0o140000;
    /// Symbolic link.
    pub const S_IFLNK: u16 = 0o120000;
    /// Regular file.
    pub const S_IFREG: u16 = 0o100000;
    /// Block device.
    pub const S_IFBLK: u16 = 0o060000;
    /// Directory.
    pub const S_IFDIR: u16 = 0o040000;
    /// Character device.
    pub const S_IFCHR: u16 = 0o020000;
    /// FIFO.
    pub const S_IFIFO: u16 = 0o010000;
}

/// Directory entry file types (`EROFS_FT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FileType {
    /// `EROFS_FT_REG_FILE`.
    Regular = 1,
    /// `EROFS_FT_DIR`.
    Directory = 2,
    /// `EROFS_FT_CHRDEV`.
    CharDevice = 3,
    /// `EROFS_FT_BLKDEV`.
    BlockDevice = 4,
    /// `EROFS_FT_FIFO`.
    Fifo = 5,
    /// `EROFS_FT_SOCK`.
    Socket = 6,
    /// `EROFS_FT_SYMLINK`.
    Symlink = 7,
}

impl FileType {
    /// The `S_IFMT` bits of this type.
    pub fn mode_bits(self) -> u16 {
        match self {
            FileType::Regular => mode::S_IFREG,
            FileType::Directory => mode::S_IFDIR,
            FileType::CharDevice => mode::S_IFCHR,
            FileType::BlockDevice => mode::S_IFBLK,
            FileType::Fifo => mode::S_IFIFO,
            FileType::Socket => mode::S_IFSOCK,
            FileType::Symlink => mode::S_IFLNK,
        }
    }

    /// The type of an `i_mode`, if its `S_IFMT` bits name one.
    pub fn from_mode(m: u16) -> Option<FileType> {
        Some(match m & mode::S_IFMT {
            mode::S_IFREG => FileType::Regular,
            mode::S_IFDIR => FileType::Directory,
            mode::S_IFCHR => FileType::CharDevice,
            mode::S_IFBLK => FileType::BlockDevice,
            mode::S_IFIFO => FileType::Fifo,
            mode::S_IFSOCK => FileType::Socket,
            mode::S_IFLNK => FileType::Symlink,
            _ => return None,
        })
    }

    /// The type named by a directory entry's `file_type` byte.
    pub fn from_dirent(b: u8) -> Option<FileType> {
        Some(match b {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::CharDevice,
            4 => FileType::BlockDevice,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => return None,
        })
    }
}

/// `struct erofs_super_block` (128 bytes at [`SUPER_OFFSET`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SuperBlock {
    /// 0: [`SUPER_MAGIC`].
    pub magic: u32,
    /// 4: crc32c of the superblock block when `FEATURE_COMPAT_SB_CHKSUM` is set; unused here.
    pub checksum: u32,
    /// 8: compatible feature bits.
    pub feature_compat: u32,
    /// 12: log2 of the block size.
    pub blkszbits: u8,
    /// 13: superblock extension slots (always 0 here).
    pub sb_extslots: u8,
    /// 14: nid of the root directory (16 bits: the root must sit early in the metadata).
    pub root_nid: u16,
    /// 16: number of inodes.
    pub inos: u64,
    /// 24: build time in seconds; compact inodes take their timestamps from it.
    pub build_time: u64,
    /// 32: build time nanoseconds.
    pub build_time_nsec: u32,
    /// 36: total blocks of the image.
    pub blocks: u32,
    /// 40: first block of the metadata (inode) area; nids count from here.
    pub meta_blkaddr: u32,
    /// 44: first block of the shared xattr area.
    pub xattr_blkaddr: u32,
    /// 48: volume UUID.
    pub uuid: [u8; 16],
    /// 64: volume name (zero here: nothing host-derived).
    pub volume_name: [u8; 16],
    /// 80: incompatible feature bits (0: no compression, chunks or devices).
    pub feature_incompat: u32,
    // 84..128: compression / device fields, all zero for this writer.
}

impl SuperBlock {
    /// Serialises the record.
    pub fn to_bytes(&self) -> [u8; SUPER_SIZE] {
        let mut b = [0u8; SUPER_SIZE];
        put(&mut b, 0, &self.magic.to_le_bytes());
        put(&mut b, 4, &self.checksum.to_le_bytes());
        put(&mut b, 8, &self.feature_compat.to_le_bytes());
        b[12] = self.blkszbits;
        b[13] = self.sb_extslots;
        put(&mut b, 14, &self.root_nid.to_le_bytes());
        put(&mut b, 16, &self.inos.to_le_bytes());
        put(&mut b, 24, &self.build_time.to_le_bytes());
        put(&mut b, 32, &self.build_time_nsec.to_le_bytes());
        put(&mut b, 36, &self.blocks.to_le_bytes());
        put(&mut b, 40, &self.meta_blkaddr.to_le_bytes());
        put(&mut b, 44, &self.xattr_blkaddr.to_le_bytes());
        put(&mut b, 48, &self.uuid);
        put(&mut b, 64, &self.volume_name);
        put(&mut b, 80, &self.feature_incompat.to_le_bytes());
        b
    }

    /// Parses the record from the first [`SUPER_SIZE`] bytes of `b` (the bytes at
    /// [`SUPER_OFFSET`]); `None` if `b` is shorter. Does not check the magic.
    pub fn parse(b: &[u8]) -> Option<SuperBlock> {
        let b = reader::slice(b, 0, SUPER_SIZE)?;
        Some(SuperBlock {
            magic: reader::u32_le(b, 0)?,
            checksum: reader::u32_le(b, 4)?,
            feature_compat: reader::u32_le(b, 8)?,
            blkszbits: reader::u8_at(b, 12)?,
            sb_extslots: reader::u8_at(b, 13)?,
            root_nid: reader::u16_le(b, 14)?,
            inos: reader::u64_le(b, 16)?,
            build_time: reader::u64_le(b, 24)?,
            build_time_nsec: reader::u32_le(b, 32)?,
            blocks: reader::u32_le(b, 36)?,
            meta_blkaddr: reader::u32_le(b, 40)?,
            xattr_blkaddr: reader::u32_le(b, 44)?,
            uuid: reader::array(b, 48)?,
            volume_name: reader::array(b, 64)?,
            feature_incompat: reader::u32_le(b, 80)?,
        })
    }
}

/// The fields common to `struct erofs_inode_compact` and `struct erofs_inode_extended`.
///
/// Compact (32 bytes): `i_format le16 @0, i_xattr_icount le16 @2, i_mode le16 @4,
/// i_nlink le16 @6, i_size le32 @8, i_reserved le32 @12 (mtime offset from build_time in
/// newer kernels; 0 here), i_u le32 @16, i_ino le32 @20, i_uid le16 @24, i_gid le16 @26,
/// reserved @28`. Timestamps of compact inodes are the superblock build time.
///
/// Extended (64 bytes): `i_format le16 @0, i_xattr_icount le16 @2, i_mode le16 @4,
/// reserved @6, i_size le64 @8, i_u le32 @16, i_ino le32 @20, i_uid le32 @24,
/// i_gid le32 @28, i_mtime le64 @32, i_mtime_nsec le32 @40, i_nlink le32 @44, reserved @48`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inode {
    /// Extended (64-byte) rather than compact (32-byte) record.
    pub extended: bool,
    /// Data layout (`DATALAYOUT_*`).
    pub datalayout: u16,
    /// `i_xattr_icount`: 0 without xattrs, else `1 + (xattr body size - 12) / 4`.
    pub xattr_icount: u16,
    /// File type and permission bits.
    pub mode: u16,
    /// Link count.
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// `i_u`: first data block (`raw_blkaddr`) or, for devices, the new-style encoded rdev.
    pub i_u: u32,
    /// 32-bit inode number for stat on 32-bit hosts.
    pub ino: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (extended only).
    pub mtime: u64,
    /// Modification time nanoseconds (extended only).
    pub mtime_nsec: u32,
}

impl Inode {
    /// Record size: [`COMPACT_INODE_SIZE`] or [`EXTENDED_INODE_SIZE`].
    pub fn record_size(&self) -> usize {
        if self.extended {
            EXTENDED_INODE_SIZE
        } else {
            COMPACT_INODE_SIZE
        }
    }

    /// `i_format`.
    pub fn format(&self) -> u16 {
        u16::from(self.extended) | (self.datalayout << INODE_DATALAYOUT_SHIFT)
    }

    /// Serialises the record into `out` (which must be [`Inode::record_size`] long). Fields
    /// that do not fit a compact record are truncated: the caller chose `extended`.
    pub fn write_to(&self, out: &mut [u8]) {
        out.fill(0);
        put(out, 0, &self.format().to_le_bytes());
        put(out, 2, &self.xattr_icount.to_le_bytes());
        put(out, 4, &self.mode.to_le_bytes());
        put(out, 16, &self.i_u.to_le_bytes());
        put(out, 20, &self.ino.to_le_bytes());
        if self.extended {
            put(out, 8, &self.size.to_le_bytes());
            put(out, 24, &self.uid.to_le_bytes());
            put(out, 28, &self.gid.to_le_bytes());
            put(out, 32, &self.mtime.to_le_bytes());
            put(out, 40, &self.mtime_nsec.to_le_bytes());
            put(out, 44, &self.nlink.to_le_bytes());
        } else {
            put(out, 6, &(self.nlink as u16).to_le_bytes());
            put(out, 8, &(self.size as u32).to_le_bytes());
            put(out, 24, &(self.uid as u16).to_le_bytes());
            put(out, 26, &(self.gid as u16).to_le_bytes());
        }
    }

    /// Parses a record from the start of `b`: compact or extended as `i_format` bit 0
    /// says. Returns `None` if `b` is shorter than that record.
    pub fn parse(b: &[u8]) -> Option<Inode> {
        let format = reader::u16_le(b, 0)?;
        let extended = format & INODE_VERSION_EXTENDED != 0;
        let len = if extended {
            EXTENDED_INODE_SIZE
        } else {
            COMPACT_INODE_SIZE
        };
        let b = reader::slice(b, 0, len)?;
        let mut inode = Inode {
            extended,
            datalayout: (format >> INODE_DATALAYOUT_SHIFT) & 0x7,
            xattr_icount: reader::u16_le(b, 2)?,
            mode: reader::u16_le(b, 4)?,
            i_u: reader::u32_le(b, 16)?,
            ino: reader::u32_le(b, 20)?,
            ..Inode::default()
        };
        if extended {
            inode.size = reader::u64_le(b, 8)?;
            inode.uid = reader::u32_le(b, 24)?;
            inode.gid = reader::u32_le(b, 28)?;
            inode.mtime = reader::u64_le(b, 32)?;
            inode.mtime_nsec = reader::u32_le(b, 40)?;
            inode.nlink = reader::u32_le(b, 44)?;
        } else {
            inode.nlink = u32::from(reader::u16_le(b, 6)?);
            inode.size = u64::from(reader::u32_le(b, 8)?);
            inode.uid = u32::from(reader::u16_le(b, 24)?);
            inode.gid = u32::from(reader::u16_le(b, 26)?);
        }
        Some(inode)
    }

    /// Size of the inline xattr body (header plus entries) this inode declares.
    pub fn xattr_size(&self) -> usize {
        xattr_body_size(self.xattr_icount)
    }
}

/// Bytes of the inline xattr body for an `i_xattr_icount`.
pub fn xattr_body_size(icount: u16) -> usize {
    match icount {
        0 => 0,
        n => XATTR_IBODY_HEADER_SIZE + (usize::from(n) - 1) * 4,
    }
}

/// Encodes a device number the way the kernel's `new_encode_dev` does (what `i_u.rdev`
/// holds), from the glibc `makedev` encoding. `None` if it does not fit 32 bits (major
/// above 4095 or minor above 2^20 - 1).
pub fn encode_rdev(rdev: u64) -> Option<u32> {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    if major > 0xfff || minor > 0xf_ffff {
        return None;
    }
    let major = major as u32;
    let minor = minor as u32;
    Some((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

/// The kernel's `new_decode_dev`: `(major, minor)` of an encoded `i_u.rdev`.
pub fn decode_rdev(dev: u32) -> (u32, u32) {
    ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

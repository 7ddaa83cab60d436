//! `rootfs.img`: the EROFS file system walked by path in both images (superblock fields, then
//! each inode's type, mode, owner, size, links, timestamp, xattrs, content and directory
//! entries), and, when the file system is identical, the appended dm-verity hash area
//! (superblock fields, then the tree level holding the first differing byte).

use std::collections::{BTreeMap, BTreeSet};

use super::{first_difference, Difference, MAX_PER_ARTIFACT};
use crate::erofs::dump::{Image, InodeRef};
use crate::verity::{Superblock, SUPERBLOCK_SIZE};

/// Directory depth at which the walk stops (images are hostile; EROFS has no directory cycles
/// when well formed, but a crafted one could).
const MAX_DEPTH: usize = 256;

const S_IFMT: u16 = 0o170_000;
const S_IFDIR: u16 = 0o040_000;
const S_IFREG: u16 = 0o100_000;
const S_IFLNK: u16 = 0o120_000;

/// Describes how two root images differ. Empty if neither parses as EROFS (the caller then
/// falls back to a byte diff).
pub fn diff(name: &str, a: &[u8], b: &[u8]) -> Vec<Difference> {
    let (Ok(ia), Ok(ib)) = (Image::open(a), Image::open(b)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let size_a = fs_size(&ia);
    let size_b = fs_size(&ib);
    let (sa, sb) = (ia.superblock(), ib.superblock());
    let fields: [(&str, String, String); 14] = [
        ("magic", sa.magic.to_string(), sb.magic.to_string()),
        (
            "checksum",
            format!("{:#010x}", sa.checksum),
            format!("{:#010x}", sb.checksum),
        ),
        (
            "feature_compat",
            sa.feature_compat.to_string(),
            sb.feature_compat.to_string(),
        ),
        (
            "blkszbits",
            sa.blkszbits.to_string(),
            sb.blkszbits.to_string(),
        ),
        ("root_nid", sa.root_nid.to_string(), sb.root_nid.to_string()),
        ("inos", sa.inos.to_string(), sb.inos.to_string()),
        (
            "build_time",
            sa.build_time.to_string(),
            sb.build_time.to_string(),
        ),
        (
            "build_time_nsec",
            sa.build_time_nsec.to_string(),
            sb.build_time_nsec.to_string(),
        ),
        ("blocks", sa.blocks.to_string(), sb.blocks.to_string()),
        (
            "meta_blkaddr",
            sa.meta_blkaddr.to_string(),
            sb.meta_blkaddr.to_string(),
        ),
        (
            "xattr_blkaddr",
            sa.xattr_blkaddr.to_string(),
            sb.xattr_blkaddr.to_string(),
        ),
        ("uuid", hex::encode(sa.uuid), hex::encode(sb.uuid)),
        (
            "volume_name",
            hex::encode(sa.volume_name),
            hex::encode(sb.volume_name),
        ),
        (
            "feature_incompat",
            sa.feature_incompat.to_string(),
            sb.feature_incompat.to_string(),
        ),
    ];
    for (field, va, vb) in fields {
        // The checksum covers the superblock only; it changes with any other field.
        if va != vb {
            out.push(Difference::new(name, "EROFS superblock", field).values(va, vb));
        }
    }
    let mut w = Walk {
        name,
        a: &ia,
        b: &ib,
        out: &mut out,
        visited: BTreeSet::new(),
    };
    w.inode(u64::from(sa.root_nid), u64::from(sb.root_nid), "/", 0);

    let (Some(size_a), Some(size_b)) = (size_a, size_b) else {
        return out;
    };
    let (fa, fb) = (a.get(..size_a), b.get(..size_b));
    if fa == fb {
        verity(
            name,
            a.get(size_a..).unwrap_or_default(),
            b.get(size_b..).unwrap_or_default(),
            size_a as u64,
            &mut out,
        );
    } else if out.is_empty() {
        // Same tree, same fields, different bytes: a layout difference (placement, padding).
        if let Some(off) = first_difference(fa.unwrap_or_default(), fb.unwrap_or_default()) {
            out.push(Difference::new(name, "EROFS metadata/layout", "bytes").at(off as u64));
        }
    }
    out
}

/// The file-system part's size (`blocks << blkszbits`), where the verity area starts.
fn fs_size(img: &Image<'_>) -> Option<usize> {
    let sb = img.superblock();
    let size = u64::from(sb.blocks).checked_shl(u32::from(sb.blkszbits))?;
    usize::try_from(size).ok()
}

struct Walk<'x, 'a> {
    name: &'x str,
    a: &'x Image<'a>,
    b: &'x Image<'a>,
    out: &'x mut Vec<Difference>,
    /// Inode pairs already compared: a crafted image could make its directories a DAG with
    /// exponentially many paths; each pair is walked once.
    visited: BTreeSet<(u64, u64)>,
}

impl Walk<'_, '_> {
    fn push(&mut self, path: &str, field: &str, a: impl ToString, b: impl ToString) {
        self.out
            .push(Difference::new(self.name, path, field).values(a.to_string(), b.to_string()));
    }

    fn inode(&mut self, nid_a: u64, nid_b: u64, path: &str, depth: usize) {
        if self.out.len() >= MAX_PER_ARTIFACT
            || depth > MAX_DEPTH
            || !self.visited.insert((nid_a, nid_b))
        {
            return;
        }
        let (ra, rb) = match (self.a.inode(nid_a), self.b.inode(nid_b)) {
            (Ok(ra), Ok(rb)) => (ra, rb),
            (ra, rb) => {
                let e = |r: Result<InodeRef, crate::erofs::dump::ReadError>| {
                    r.map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string())
                };
                self.push(path, "unreadable inode", e(ra), e(rb));
                return;
            }
        };
        let (a, b) = (&ra.inode, &rb.inode);
        if a.mode & S_IFMT != b.mode & S_IFMT {
            self.push(
                path,
                "file type",
                format!("{:o}", a.mode),
                format!("{:o}", b.mode),
            );
            return;
        }
        if a.mode != b.mode {
            self.push(
                path,
                "mode",
                format!("{:o}", a.mode),
                format!("{:o}", b.mode),
            );
        }
        if a.uid != b.uid {
            self.push(path, "uid", a.uid, b.uid);
        }
        if a.gid != b.gid {
            self.push(path, "gid", a.gid, b.gid);
        }
        if a.nlink != b.nlink {
            self.push(path, "nlink", a.nlink, b.nlink);
        }
        if (a.mtime, a.mtime_nsec) != (b.mtime, b.mtime_nsec) {
            self.push(
                path,
                "mtime (timestamp)",
                format!("{}.{:09}", a.mtime, a.mtime_nsec),
                format!("{}.{:09}", b.mtime, b.mtime_nsec),
            );
        }
        self.xattrs(&ra, &rb, path);
        match a.mode & S_IFMT {
            S_IFDIR => self.dir(&ra, &rb, path, depth),
            S_IFREG | S_IFLNK => {
                if a.size != b.size {
                    self.push(path, "size", a.size, b.size);
                }
                if let (Ok(da), Ok(db)) = (self.a.data(&ra), self.b.data(&rb)) {
                    if let Some(off) = first_difference(&da, &db) {
                        self.out
                            .push(Difference::new(self.name, path, "content").at(off as u64));
                    }
                }
            }
            _ => {
                if a.i_u != b.i_u {
                    self.push(path, "device number (i_u)", a.i_u, b.i_u);
                }
            }
        }
    }

    fn xattrs(&mut self, ra: &InodeRef, rb: &InodeRef, path: &str) {
        let (Ok(xa), Ok(xb)) = (self.a.xattrs(ra), self.b.xattrs(rb)) else {
            return;
        };
        let ma: BTreeMap<_, _> = xa.into_iter().collect();
        let mb: BTreeMap<_, _> = xb.into_iter().collect();
        let names: BTreeSet<_> = ma.keys().chain(mb.keys()).collect();
        for n in names {
            let (va, vb) = (ma.get(n), mb.get(n));
            if va != vb {
                let show =
                    |v: Option<&Vec<u8>>| v.map(hex::encode).unwrap_or_else(|| "(absent)".into());
                self.push(
                    path,
                    &format!("xattr {}", String::from_utf8_lossy(n)),
                    show(va),
                    show(vb),
                );
            }
        }
    }

    fn dir(&mut self, ra: &InodeRef, rb: &InodeRef, path: &str, depth: usize) {
        let (Ok(ea), Ok(eb)) = (self.a.dir_entries(ra, path), self.b.dir_entries(rb, path)) else {
            self.out
                .push(Difference::new(self.name, path, "directory unreadable"));
            return;
        };
        let real = |e: &crate::erofs::dump::DirEntry| e.name != b"." && e.name != b"..";
        let na: Vec<_> = ea.iter().filter(|e| real(e)).collect();
        let nb: Vec<_> = eb.iter().filter(|e| real(e)).collect();
        let names = |v: &[&crate::erofs::dump::DirEntry]| {
            v.iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                .collect::<Vec<_>>()
        };
        let (sa, sb) = (names(&na), names(&nb));
        let child = |n: &str| {
            if path.ends_with('/') {
                format!("{path}{n}")
            } else {
                format!("{path}/{n}")
            }
        };
        for n in sa.iter().filter(|n| !sb.contains(n)) {
            self.out
                .push(Difference::new(self.name, child(n), "only in build A"));
        }
        for n in sb.iter().filter(|n| !sa.contains(n)) {
            self.out
                .push(Difference::new(self.name, child(n), "only in build B"));
        }
        let mut ca: Vec<_> = sa.iter().filter(|n| sb.contains(n)).collect();
        let cb: Vec<_> = sb.iter().filter(|n| sa.contains(n)).collect();
        if ca != cb {
            self.push(path, "directory entry order", ca.len(), cb.len());
        }
        ca.sort();
        for n in ca {
            let find = |v: &[&crate::erofs::dump::DirEntry]| {
                v.iter()
                    .find(|e| String::from_utf8_lossy(&e.name) == n.as_str())
                    .map(|e| e.nid)
            };
            if let (Some(x), Some(y)) = (find(&na), find(&nb)) {
                self.inode(x, y, &child(n), depth + 1);
            }
        }
    }
}

/// The dm-verity hash area (identical file systems): superblock fields, then the tree level
/// holding the first differing byte. `base` is the area's offset in the image.
fn verity(name: &str, a: &[u8], b: &[u8], base: u64, out: &mut Vec<Difference>) {
    let Some(off) = first_difference(a, b) else {
        return;
    };
    let loc = "dm-verity hash area";
    let (Ok(sa), Ok(sb)) = (Superblock::parse(a), Superblock::parse(b)) else {
        out.push(Difference::new(name, loc, "bytes (superblock unreadable)").at(base + off as u64));
        return;
    };
    let fields: [(&str, String, String); 7] = [
        (
            "superblock hash_type",
            sa.hash_type.to_string(),
            sb.hash_type.to_string(),
        ),
        (
            "superblock uuid",
            hex::encode(sa.uuid),
            hex::encode(sb.uuid),
        ),
        (
            "superblock algorithm",
            sa.algorithm.clone(),
            sb.algorithm.clone(),
        ),
        (
            "superblock data_block_size",
            sa.data_block_size.to_string(),
            sb.data_block_size.to_string(),
        ),
        (
            "superblock hash_block_size",
            sa.hash_block_size.to_string(),
            sb.hash_block_size.to_string(),
        ),
        (
            "superblock data_blocks",
            sa.data_blocks.to_string(),
            sb.data_blocks.to_string(),
        ),
        (
            "superblock salt",
            hex::encode(&sa.salt),
            hex::encode(&sb.salt),
        ),
    ];
    for (field, va, vb) in fields {
        if va != vb {
            out.push(Difference::new(name, loc, field).values(va, vb));
        }
    }
    let hbs = u64::from(sa.hash_block_size.max(SUPERBLOCK_SIZE as u32));
    let region = level_at(sa.data_blocks, hbs, off as u64);
    out.push(
        Difference::new(
            name,
            format!("{loc} (image offset {base}), {region}"),
            "bytes",
        )
        .at(off as u64),
    );
}

/// Names the part of a hash area holding `offset`: the superblock block, or tree level `i`
/// (0 = the leaves, hashing data blocks), top level first after the superblock block.
fn level_at(data_blocks: u64, hbs: u64, offset: u64) -> String {
    if offset < hbs {
        return "superblock block".to_owned();
    }
    let per = (hbs / 32).max(2);
    let mut levels = Vec::new();
    let mut n = data_blocks;
    while n > 1 && levels.len() < 64 {
        n = n.div_ceil(per);
        levels.push(n);
    }
    let mut start = hbs;
    for i in (0..levels.len()).rev() {
        let end = start.saturating_add(levels[i].saturating_mul(hbs));
        if (start..end).contains(&offset) {
            return format!("level {i} of {} (0 = leaves)", levels.len());
        }
        start = end;
    }
    "past the tree".to_owned()
}

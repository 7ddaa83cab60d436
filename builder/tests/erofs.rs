//! The EROFS writer checked by independent readers: erofs-utils 1.5 (`fsck.erofs` checks
//! and extracts, `dump.erofs` reports inodes and the superblock) and, in an ignored test
//! that needs loop devices, the Linux kernel itself. Expected values come from the input
//! tree and the EROFS spec, never from the writer.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use builder::erofs::{self, Options};
use builder::tree::{Directory, Entry, Leaf, LeafId, LeafKind, MemoryContent, Metadata, Tree};
use sha2::Digest;

const EPOCH: u64 = 1_700_000_000;
const UUID: [u8; 16] = *b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10";

fn options() -> Options {
    Options {
        epoch: EPOCH,
        uuid: UUID,
    }
}

/// A tree under construction, keeping every blob so contents can be compared later.
#[derive(Default)]
struct Fixture {
    tree: Tree,
    store: MemoryContent,
    blobs: BTreeMap<builder::tree::Content, Vec<u8>>,
}

fn meta(mode: u32, uid: u32, gid: u32) -> Metadata {
    Metadata {
        mode,
        uid,
        gid,
        xattrs: BTreeMap::new(),
    }
}

fn dir(meta: Metadata, entries: Vec<(&[u8], Entry)>) -> Entry {
    Entry::Directory(Directory {
        meta,
        entries: entries.into_iter().map(|(n, e)| (n.to_vec(), e)).collect(),
    })
}

/// A directory holding only leaves.
fn leaves(meta: Metadata, entries: &[(&[u8], LeafId)]) -> Entry {
    dir(
        meta,
        entries
            .iter()
            .map(|&(n, id)| (n, Entry::Leaf(id)))
            .collect(),
    )
}

impl Fixture {
    fn leaf(&mut self, meta: Metadata, kind: LeafKind) -> LeafId {
        self.tree.push_leaf(Leaf { meta, kind })
    }

    fn file(&mut self, meta: Metadata, data: Vec<u8>) -> LeafId {
        let c = self.store.insert(data.clone());
        self.blobs.insert(c, data);
        self.leaf(meta, LeafKind::Regular(c))
    }

    fn write(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let info = erofs::write(&self.tree, &options(), &self.store, &mut out).expect("write");
        assert_eq!(info.size, out.len() as u64);
        assert_eq!(out.len() % 4096, 0);
        out
    }

    /// Writes the image, and a copy of it as a file in a new temporary directory.
    fn write_to_tmp(&self) -> (Vec<u8>, tempfile::TempDir, PathBuf) {
        let bytes = self.write();
        let tmp = tempfile::tempdir().unwrap();
        let image = write_image(tmp.path(), &bytes);
        (bytes, tmp, image)
    }
}

fn patterned(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn xattrs(pairs: &[(&[u8], &[u8])]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

fn makedev(major: u64, minor: u64) -> u64 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

/// The varied tree: every inode kind, hard links across directories, xattrs in every
/// namespace, setuid/setgid/sticky, big ids, long and non-ASCII names, a directory of a
/// thousand entries, a 40-block directory of 255-byte names, files around the block size.
fn varied() -> Fixture {
    varied_with(true)
}

/// [`varied`], or (`full == false`) a variant mkfs.erofs 1.5 can build from a copy on
/// disk: without the xattr larger than a block (ext4 cannot store it) and with 254-byte
/// instead of 255-byte names (mkfs.erofs 1.5 fails on 255: "Could not format the device",
/// while its fsck.erofs and the kernel read them).
fn varied_with(full: bool) -> Fixture {
    let max_name = if full { 255 } else { 254 };
    let mut f = Fixture::default();
    let sh = f.file(meta(0o755, 0, 0), b"#!/bin/sh\necho hi\n".to_vec());
    let su = f.file(meta(0o4755, 0, 0), patterned(5000, 1));
    let sg = f.file(meta(0o2711, 0, 50), b"sgid".to_vec());
    let big = f.file(meta(0o644, 0, 0), patterned(1024 * 1024 + 123, 2));
    let empty = f.file(meta(0o600, 1000, 1000), Vec::new());
    let exact = f.file(meta(0o644, 0, 0), patterned(4096, 3));
    let almost = f.file(meta(0o644, 0, 0), patterned(4095, 4));
    let small = f.file(meta(0o644, 0, 0), patterned(4000, 5));
    // Tail packing: whole blocks in the data area, the last partial block inline when it fits
    // after the inode (and its xattrs) in one block.
    let t4097 = f.file(meta(0o644, 0, 0), patterned(4097, 11));
    let t8191 = f.file(meta(0o644, 0, 0), patterned(8191, 12));
    let t8292 = f.file(meta(0o644, 0, 0), patterned(8192 + 100, 13));
    let mut lx = meta(0o644, 0, 0);
    lx.xattrs = xattrs(&[(b"user.origin", b"a large file with xattrs")]);
    let large_xattrs = f.file(lx, patterned(3 * 4096 + 2000, 14));
    // 4000 bytes would fit after a bare 32-byte inode, not after these xattrs (132 bytes).
    let mut nx = meta(0o644, 0, 0);
    nx.xattrs = xattrs(&[(b"user.pad", &[b'p'; 110])]);
    let nofit_xattrs = f.file(nx, patterned(4096 + 4000, 15));
    let mut xa = meta(0o640, 1234, 5678);
    xa.xattrs = xattrs(&[
        (b"user.mime_type", b"text/plain"),
        (b"user.empty", b""),
        (b"trusted.overlay.opaque", b"y"),
        (b"security.selinux", b"system_u:object_r:bin_t:s0\0"),
        (
            b"security.capability",
            b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ),
    ]);
    let with_xattrs = f.file(xa, patterned(3000, 6));
    // Xattrs larger than a block: the inode's xattr body spans blocks, its data goes out of line.
    let mut bx = meta(0o644, 0, 0);
    bx.xattrs = xattrs(&[(b"user.big", &patterned(6000, 10)), (b"user.small", b"s")]);
    let big_xattr_file = f.file(bx, b"tiny".to_vec());
    let hard = f.file(meta(0o444, 7, 8), b"hard linked\n".to_vec());
    let bigid = f.file(meta(0o644, 100_000, 200_000), b"extended inode\n".to_vec());
    let abs = f.leaf(meta(0o777, 0, 0), LeafKind::Symlink(b"/bin/sh".to_vec()));
    let rel = f.leaf(meta(0o777, 0, 0), LeafKind::Symlink(b"../bin/sh".to_vec()));
    let long_target = [&b"/"[..], &[b'x'; 4000]].concat();
    let long = f.leaf(meta(0o777, 33, 33), LeafKind::Symlink(long_target));
    let null = f.leaf(meta(0o666, 0, 0), LeafKind::CharDevice(makedev(1, 3)));
    let sda = f.leaf(meta(0o660, 0, 6), LeafKind::BlockDevice(makedev(8, 0)));
    let odd = f.leaf(
        meta(0o600, 0, 0),
        LeafKind::CharDevice(makedev(250, 0x12345)),
    );
    let fifo = f.leaf(meta(0o620, 0, 0), LeafKind::Fifo);
    let sock = f.leaf(meta(0o755, 0, 0), LeafKind::Socket);
    let long_name = f.file(meta(0o644, 0, 0), b"255".to_vec());
    let cafe = f.file(meta(0o644, 0, 0), b"caf\xc3\xa9".to_vec());
    let raw = f.file(meta(0o644, 0, 0), b"raw".to_vec());
    let dash = f.file(meta(0o644, 0, 0), b"sorts before dot".to_vec());

    let many: Vec<(Vec<u8>, Entry)> = (0..1000u32)
        .map(|i| {
            let name = format!("entry-{i:04}{}", "x".repeat((i % 37) as usize)).into_bytes();
            let id = f.file(meta(0o644, 0, 0), format!("file {i}\n").into_bytes());
            (name, Entry::Leaf(id))
        })
        .collect();
    let wide: Vec<(Vec<u8>, Entry)> = (0..600u32)
        .map(|i| {
            let mut name = format!("{i:03}").repeat(85).into_bytes();
            name.truncate(max_name);
            (name, Entry::Leaf(raw))
        })
        .collect();
    let many_ref: Vec<(&[u8], Entry)> = many
        .iter()
        .map(|(n, e)| (n.as_slice(), e.clone()))
        .collect();
    let wide_ref: Vec<(&[u8], Entry)> = wide
        .iter()
        .map(|(n, e)| (n.as_slice(), e.clone()))
        .collect();

    let mut root_meta = meta(0o755, 0, 0);
    root_meta.xattrs = xattrs(&[(b"user.root", b"1")]);
    let Entry::Directory(root) = dir(
        root_meta,
        vec![
            (b"-dash", Entry::Leaf(dash)),
            (
                b"bin",
                leaves(meta(0o755, 0, 0), &[(b"sh", sh), (b"su", su), (b"sg", sg)]),
            ),
            (b"big", Entry::Leaf(big)),
            (b"empty", Entry::Leaf(empty)),
            (b"emptydir", dir(meta(0o700, 1000, 1000), vec![])),
            (
                b"sizes",
                leaves(
                    meta(0o755, 0, 0),
                    &[
                        (b"4096", exact),
                        (b"4095", almost),
                        (b"4000", small),
                        (b"4097", t4097),
                        (b"8191", t8191),
                        (b"8292", t8292),
                        (b"large-xattrs", large_xattrs),
                        (b"nofit-xattrs", nofit_xattrs),
                    ],
                ),
            ),
            (b"xattrs", Entry::Leaf(with_xattrs)),
            (
                b"a",
                dir(
                    meta(0o755, 0, 0),
                    vec![(
                        b"b",
                        dir(
                            meta(0o2775, 0, 50),
                            vec![(b"c", leaves(meta(0o750, 3, 4), &[(b"hardlink-1", hard)]))],
                        ),
                    )],
                ),
            ),
            (
                b"links",
                leaves(
                    meta(0o755, 0, 0),
                    &[
                        (b"abs", abs),
                        (b"rel", rel),
                        (b"long", long),
                        (b"hardlink-2", hard),
                    ],
                ),
            ),
            (b"bigid", Entry::Leaf(bigid)),
            (
                b"dev",
                leaves(
                    meta(0o755, 0, 0),
                    &[
                        (b"null", null),
                        (b"sda", sda),
                        (b"odd", odd),
                        (b"fifo", fifo),
                        (b"sock", sock),
                    ],
                ),
            ),
            (b"tmp", dir(meta(0o1777, 0, 0), vec![])),
            (
                b"names",
                leaves(
                    meta(0o755, 0, 0),
                    &[
                        (&[b'n'; 255][..max_name], long_name),
                        ("café".as_bytes(), cafe),
                        (b"\xff\xfe raw \x01", raw),
                    ],
                ),
            ),
            (b"many", dir(meta(0o755, 0, 0), many_ref)),
            (b"wide", dir(meta(0o755, 0, 0), wide_ref)),
        ],
    ) else {
        unreachable!()
    };
    f.tree.root = root;
    if full {
        f.tree
            .root
            .entries
            .insert(b"xattrs-big".to_vec(), Entry::Leaf(big_xattr_file));
    }
    // A leaf no entry names: must not be written.
    f.file(meta(0o644, 0, 0), b"orphan".to_vec());
    f
}

/// Runs a reference tool, failing with a clear message if it is missing or fails.
fn reference_tool(tool: &str, args: &[&OsStr]) -> String {
    let output = Command::new(tool).args(args).env("TZ", "UTC").output().unwrap_or_else(|e| {
        panic!("cannot run `{tool}` ({e}): install erofs-utils 1.5 (fsck.erofs, dump.erofs) and attr (getfattr)")
    });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        // mkfs.erofs prints a progress line per file: keep the end, where the error is.
        let tail = |s: &str| {
            s.chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>()
        };
        panic!(
            "`{tool}` failed: {}\n{}\n{}",
            output.status,
            tail(&stdout),
            tail(&stderr)
        );
    }
    assert!(
        output.status.success(),
        "`{tool} {args:?}` failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    stdout + &stderr
}

fn write_image(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("image.erofs");
    fs_err::write(&path, bytes).unwrap();
    path
}

/// Counts the names of each leaf and the subdirectories of each directory path.
fn nlinks(dir: &Directory, counts: &mut BTreeMap<LeafId, u64>) {
    for entry in dir.entries.values() {
        match entry {
            Entry::Directory(d) => nlinks(d, counts),
            Entry::Leaf(id) => *counts.entry(*id).or_default() += 1,
        }
    }
}

struct Compare<'f> {
    f: &'f Fixture,
    nlink: BTreeMap<LeafId, u64>,
    inos: BTreeMap<LeafId, u64>,
    /// Reading a kernel mount, not an fsck.erofs 1.5 extraction (which restores neither
    /// xattrs nor hard links, and whose directory link counts are the host's).
    kernel: bool,
    checked: usize,
}

impl Compare<'_> {
    fn check_meta(&mut self, path: &Path, m: &Metadata, st: &std::fs::Metadata, is_symlink: bool) {
        if !is_symlink {
            // fsck.erofs 1.5 extracts with chmod before chown, and chown clears setuid and
            // setgid on files (also for images made by mkfs.erofs 1.5); the kernel mount test
            // (kernel_mount_shows_the_tree) checks those bits.
            let lost = if self.kernel || st.is_dir() {
                0
            } else {
                0o6000
            };
            assert_eq!(st.mode() & 0o7777 & !lost, m.mode & !lost, "{path:?}: mode");
        }
        assert_eq!((st.uid(), st.gid()), (m.uid, m.gid), "{path:?}: owner");
        assert_eq!(st.mtime() as u64, EPOCH, "{path:?}: mtime");
        if self.kernel {
            assert_eq!(getfattr(path), m.xattrs, "{path:?}: xattrs");
        }
        self.checked += 1;
    }

    fn dir(&mut self, d: &Directory, path: &Path) {
        let st = fs_err::symlink_metadata(path).unwrap();
        assert!(st.is_dir(), "{path:?}: not a directory");
        self.check_meta(path, &d.meta, &st, false);
        let subdirs = d
            .entries
            .values()
            .filter(|e| matches!(e, Entry::Directory(_)))
            .count();
        if self.kernel {
            assert_eq!(st.nlink(), 2 + subdirs as u64, "{path:?}: nlink");
        }
        let mut names: Vec<Vec<u8>> = fs_err::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        names.sort();
        let expected: Vec<Vec<u8>> = d.entries.keys().cloned().collect();
        assert_eq!(names, expected, "{path:?}: entries");
        for (name, entry) in &d.entries {
            let child = path.join(OsStr::from_bytes(name));
            match entry {
                Entry::Directory(sub) => self.dir(sub, &child),
                Entry::Leaf(id) => self.leaf(*id, &child),
            }
        }
    }

    fn leaf(&mut self, id: LeafId, path: &Path) {
        let leaf = self.f.tree.leaf(id);
        let st = fs_err::symlink_metadata(path).unwrap();
        let ft = st.file_type();
        match &leaf.kind {
            LeafKind::Regular(c) => {
                assert!(ft.is_file(), "{path:?}: not a file");
                let data = fs_err::read(path).unwrap();
                assert_eq!(data.len() as u64, c.size, "{path:?}: size");
                assert!(data == self.f.blobs[c], "{path:?}: content differs");
            }
            LeafKind::Symlink(t) => {
                assert!(ft.is_symlink(), "{path:?}: not a symlink");
                let target = fs_err::read_link(path).unwrap();
                assert_eq!(
                    target.as_os_str().as_bytes(),
                    t.as_slice(),
                    "{path:?}: target"
                );
            }
            LeafKind::CharDevice(r) => {
                assert!(ft.is_char_device(), "{path:?}: not a char device");
                assert_eq!(st.rdev(), *r, "{path:?}: rdev");
            }
            LeafKind::BlockDevice(r) => {
                assert!(ft.is_block_device(), "{path:?}: not a block device");
                assert_eq!(st.rdev(), *r, "{path:?}: rdev");
            }
            LeafKind::Fifo => assert!(ft.is_fifo(), "{path:?}: not a fifo"),
            LeafKind::Socket => assert!(ft.is_socket(), "{path:?}: not a socket"),
        }
        self.check_meta(
            path,
            &leaf.meta,
            &st,
            matches!(leaf.kind, LeafKind::Symlink(_)),
        );
        // fsck.erofs 1.5 extracts each name of a hard link as its own file; the kernel shows
        // them as one inode (dump_erofs_reports_each_inode checks the shared nid).
        if self.kernel {
            assert_eq!(st.nlink(), self.nlink[&id], "{path:?}: nlink");
            let ino = *self.inos.entry(id).or_insert(st.ino());
            assert_eq!(st.ino(), ino, "{path:?}: a hard link with its own inode");
        }
    }
}

fn compare(f: &Fixture, root: &Path, kernel: bool) -> usize {
    let mut nlink = BTreeMap::new();
    nlinks(&f.tree.root, &mut nlink);
    let mut c = Compare {
        f,
        nlink,
        inos: BTreeMap::new(),
        kernel,
        checked: 0,
    };
    c.dir(&f.tree.root, root);
    c.checked
}

/// All xattrs of `path` (not following symlinks), read with `getfattr`.
fn getfattr(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let out = reference_tool(
        "getfattr",
        &[
            "--absolute-names".as_ref(),
            "-h".as_ref(),
            "-d".as_ref(),
            "-m".as_ref(),
            "-".as_ref(),
            "-e".as_ref(),
            "hex".as_ref(),
            path.as_os_str(),
        ],
    );
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| {
            let v = v.strip_prefix("0x").unwrap_or(v);
            (
                n.as_bytes().to_vec(),
                if v == "\"\"" {
                    Vec::new()
                } else {
                    hex::decode(v).unwrap()
                },
            )
        })
        .collect()
}

/// `Key: value` fields of a `dump.erofs` report, e.g. `NID: 36   Links: 2` → both.
fn fields(report: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in report.lines() {
        // Superblock lines: "Filesystem root nid:      36".
        if line.starts_with("Filesystem") {
            if let Some((k, v)) = line.split_once(':') {
                out.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            continue;
        }
        // Inode lines: "Inode size: 32   Extent size: 0   Xattr size: 0"; a key is one
        // word, or two when the word before it is not the previous key's value.
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let Some(k) = w.strip_suffix(':') else {
                continue;
            };
            let two =
                i >= 1 && !words[i - 1].ends_with(':') && (i < 2 || !words[i - 2].ends_with(':'));
            let key = if two {
                format!("{} {k}", words[i - 1])
            } else {
                k.to_owned()
            };
            if let Some(v) = words.get(i + 1) {
                out.insert(key, (*v).to_owned());
            }
        }
    }
    out
}

/// The inline xattr body size the EROFS spec gives for `xattrs`: a 12-byte header, then per
/// entry 4 bytes + name suffix + value, padded to 4.
fn spec_xattr_size(x: &BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
    if x.is_empty() {
        return 0;
    }
    let prefixes: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];
    12 + x
        .iter()
        .map(|(n, v)| {
            let p = prefixes
                .iter()
                .find(|p| n.starts_with(p))
                .expect("known prefix");
            (4 + n.len() - p.len() + v.len()).div_ceil(4) * 4
        })
        .sum::<usize>()
}

#[test]
fn fsck_erofs_passes_and_extracts_the_tree() {
    let f = varied();
    let (bytes, tmp, image) = f.write_to_tmp();
    let report = reference_tool("fsck.erofs", &[image.as_os_str()]);
    assert!(!report.to_lowercase().contains("error"), "{report}");
    let out = tmp.path().join("out");
    let arg = format!("--extract={}", out.display());
    reference_tool("fsck.erofs", &[arg.as_ref(), image.as_os_str()]);
    let checked = compare(&f, &out, false);
    // The inline rule: the last partial block (`size % 4096`, all of data shorter than a
    // block) goes inline if inode + xattrs + it fit a block. Our reader reads the files back
    // with the input's sha256.
    let listing = erofs::dump(&bytes).unwrap();
    let sizes = match &f.tree.root.entries[&b"sizes"[..]] {
        Entry::Directory(d) => d,
        Entry::Leaf(_) => unreachable!(),
    };
    for (name, entry) in &sizes.entries {
        let Entry::Leaf(id) = entry else { panic!() };
        let LeafKind::Regular(c) = &f.tree.leaf(*id).kind else {
            panic!()
        };
        let path = format!("/sizes/{} ", String::from_utf8_lossy(name));
        let line = listing.lines().find(|l| l.starts_with(&path)).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(&f.blobs[c]));
        assert!(line.contains(&format!(" sha256={sha}")), "{line}");
    }
    for (path, layout) in [
        ("/sizes/4000 ", "layout=inline"),
        ("/sizes/4095 ", "layout=plain"),
        ("/sizes/4096 ", "layout=plain"),
        ("/sizes/4097 ", "layout=inline"),
        ("/sizes/8191 ", "layout=plain"),
        ("/sizes/8292 ", "layout=inline"),
        ("/sizes/large-xattrs ", "layout=inline"),
        ("/sizes/nofit-xattrs ", "layout=plain"),
        ("/bin/su ", "layout=inline"),
        ("/big ", "layout=inline"),
        ("/empty ", "layout=plain"),
        // 1000 entries, 40231 bytes: 9 whole blocks and a 3367-byte tail that fits.
        ("/many ", "layout=inline"),
        ("/links/long ", "layout=inline"),
        ("/links/abs ", "layout=inline"),
    ] {
        let line = listing.lines().find(|l| l.starts_with(path)).unwrap();
        assert!(line.contains(layout), "{line}");
    }
    // Our own reader walks the same image without complaint.
    let listing = erofs::dump(&bytes).unwrap();
    let inode_lines = listing
        .lines()
        .filter(|l| !l.starts_with("  xattr "))
        .count();
    assert_eq!(
        inode_lines,
        1 + checked,
        "one line per name plus the superblock"
    );
    // Every name in the tree (1000 + 600 in the big directories) plus the root.
    assert!(checked > 1600, "{checked}");
}

#[test]
fn dump_erofs_reports_the_superblock() {
    let f = varied();
    let (bytes, _tmp, image) = f.write_to_tmp();
    let sb = fields(&reference_tool(
        "dump.erofs",
        &["-s".as_ref(), image.as_os_str()],
    ));
    assert_eq!(sb["Filesystem magic number"], "0xE0F5E1E2");
    assert_eq!(sb["Filesystem blocks"], (bytes.len() / 4096).to_string());
    assert_eq!(sb["Filesystem inode metadata start block"], "0");
    assert_eq!(sb["Filesystem root nid"], "36");
    // Directories (root, bin, emptydir, sizes, a, a/b, a/b/c, links, dev, tmp, names,
    // many, wide = 13) + distinct reachable leaves; the orphan is not counted.
    let mut nlink = BTreeMap::new();
    nlinks(&f.tree.root, &mut nlink);
    assert_eq!(sb["Filesystem inode count"], (13 + nlink.len()).to_string());
    assert_eq!(sb["Filesystem created"], "Tue Nov 14 22:13:20 2023");
    assert_eq!(
        sb["Filesystem UUID"],
        "01234567-89ab-cdef-fedc-ba9876543210"
    );
    assert_eq!(sb["Filesystem features"], "mtime");
}

#[test]
fn dump_erofs_reports_each_inode() {
    let f = varied();
    let (_, _tmp, image) = f.write_to_tmp();
    let check = |path: &str, m: &Metadata, links: u64, size: Option<u64>, type_word: &str| {
        let report = reference_tool(
            "dump.erofs",
            &[format!("--path={path}").as_ref(), image.as_os_str()],
        );
        assert!(report.contains(type_word), "{path}: {report}");
        let got = fields(&report);
        assert_eq!(got["Links"], links.to_string(), "{path}: {report}");
        assert_eq!(got["Uid"], m.uid.to_string(), "{path}: {report}");
        assert_eq!(got["Gid"], m.gid.to_string(), "{path}: {report}");
        // dump.erofs 1.5 prints only the rwx bits here (checked with an image from
        // mkfs.erofs 1.5 of a setuid file: "Access: 0755"); extraction checks the rest.
        assert_eq!(
            got["Access"][..4],
            format!("{:04o}", m.mode & 0o777),
            "{path}: {report}"
        );
        assert_eq!(
            got["Xattr size"],
            spec_xattr_size(&m.xattrs).to_string(),
            "{path}: {report}"
        );
        if let Some(size) = size {
            assert_eq!(got["Size"], size.to_string(), "{path}: {report}");
        }
        assert_eq!(got["Timestamp"], "2023-11-14", "{path}: {report}");
    };
    let t = &f.tree;
    check("/", &t.root.meta, 2 + 10, None, "directory");
    let leaf = |p: &[&[u8]]| {
        let mut d = &t.root;
        for (i, n) in p.iter().enumerate() {
            match &d.entries[*n] {
                Entry::Directory(sub) if i + 1 < p.len() => d = sub,
                Entry::Leaf(id) => return t.leaf(*id),
                _ => panic!(),
            }
        }
        unreachable!()
    };
    check(
        "/xattrs",
        &leaf(&[b"xattrs"]).meta,
        1,
        Some(3000),
        "regular file",
    );
    check(
        "/xattrs-big",
        &leaf(&[b"xattrs-big"]).meta,
        1,
        Some(4),
        "regular file",
    );
    check(
        "/big",
        &leaf(&[b"big"]).meta,
        1,
        Some(1024 * 1024 + 123),
        "regular file",
    );
    check(
        "/links/hardlink-2",
        &leaf(&[b"links", b"hardlink-2"]).meta,
        2,
        Some(12),
        "regular file",
    );
    check(
        "/bigid",
        &leaf(&[b"bigid"]).meta,
        1,
        Some(15),
        "regular file",
    );
    check(
        "/bin/su",
        &leaf(&[b"bin", b"su"]).meta,
        1,
        Some(5000),
        "regular file",
    );
    check(
        "/links/long",
        &leaf(&[b"links", b"long"]).meta,
        1,
        Some(4001),
        "symlink",
    );
    check(
        "/dev/odd",
        &leaf(&[b"dev", b"odd"]).meta,
        1,
        None,
        "char dev",
    );
    check(
        "/dev/sock",
        &leaf(&[b"dev", b"sock"]).meta,
        1,
        None,
        "SOCK file",
    );
    check("/tmp", &meta(0o1777, 0, 0), 2, None, "directory");
    // nid of the hard links is one.
    let nid = |p: &str| {
        fields(&reference_tool(
            "dump.erofs",
            &[format!("--path={p}").as_ref(), image.as_os_str()],
        ))["NID"]
            .clone()
    };
    assert_eq!(nid("/a/b/c/hardlink-1"), nid("/links/hardlink-2"));

    // Name lookups through erofs-utils' namei for a sample of the big directories and a
    // name that sorts before `.` (the cross-block sort order itself is checked by
    // fsck.erofs, which rejects unsorted directories, and by the kernel mount test).
    // dump.erofs exits 0 even when a lookup fails, so check what it found: in /many the
    // file itself, in /wide the one inode all 600 names link to (it names it by another).
    let lookups = |dir: &str, d: &Directory, expect: &dyn Fn(&str) -> String| {
        let names: Vec<&Vec<u8>> = d.entries.keys().collect();
        for (i, name) in names.iter().enumerate() {
            if i % 97 != 0 && i + 1 != names.len() {
                continue;
            }
            let path = format!("{dir}/{}", std::str::from_utf8(name).unwrap());
            let report = reference_tool(
                "dump.erofs",
                &[format!("--path={path}").as_ref(), image.as_os_str()],
            );
            assert!(report.contains(&expect(&path)), "{path}: {report}");
        }
    };
    let sub = |name: &str| match &t.root.entries[name.as_bytes()] {
        Entry::Directory(d) => d,
        Entry::Leaf(_) => panic!("{name} is not a directory"),
    };
    lookups("/many", sub("many"), &|path| format!("File : {path}"));
    lookups("/wide", sub("wide"), &|_| "Links: 601".to_owned());
    let report = reference_tool("dump.erofs", &["--path=/-dash".as_ref(), image.as_os_str()]);
    assert!(report.contains("Size: 16"), "{report}");
}

/// The kernel's own reader, including xattrs and link counts. Needs root, loop devices and
/// the erofs module, which CI containers may lack: run with `--ignored`.
#[test]
#[ignore = "mounts a loop device: needs root, /dev/loop* and the erofs kernel module"]
fn kernel_mount_shows_the_tree() {
    let f = varied();
    let (_, tmp, image) = f.write_to_tmp();
    let mnt = tmp.path().join("mnt");
    fs_err::create_dir(&mnt).unwrap();
    reference_tool(
        "mount",
        &[
            "-t".as_ref(),
            "erofs".as_ref(),
            "-o".as_ref(),
            "loop,ro".as_ref(),
            image.as_os_str(),
            mnt.as_os_str(),
        ],
    );
    let result = std::panic::catch_unwind(|| compare(&f, &mnt, true));
    reference_tool("umount", &[mnt.as_os_str()]);
    assert!(result.expect("comparison failed") > 1600);
}

/// A small tree for the snapshot and the pinned digest.
fn small() -> Fixture {
    let mut f = Fixture::default();
    let hello = f.file(meta(0o644, 0, 0), b"hello\n".to_vec());
    let block = f.file(meta(0o755, 1000, 100), patterned(4096 + 10, 9));
    let link = f.leaf(meta(0o777, 0, 0), LeafKind::Symlink(b"hello".to_vec()));
    let dev = f.leaf(meta(0o600, 0, 0), LeafKind::CharDevice(makedev(5, 1)));
    let mut xm = meta(0o4750, 0, 10);
    xm.xattrs = xattrs(&[(b"security.capability", b"\x01\x02"), (b"user.a", b"b")]);
    let x = f.file(xm, b"x".to_vec());
    let Entry::Directory(root) = dir(
        meta(0o755, 0, 0),
        vec![
            (b"hello", Entry::Leaf(hello)),
            (
                b"etc",
                leaves(
                    meta(0o755, 0, 0),
                    &[(b"console", dev), (b"hello-again", hello)],
                ),
            ),
            (
                b"bin",
                leaves(
                    meta(0o755, 0, 0),
                    &[(b"tool", block), (b"x", x), (b"link", link)],
                ),
            ),
        ],
    ) else {
        unreachable!()
    };
    f.tree.root = root;
    f
}

#[test]
fn output_is_deterministic() {
    let f = varied();
    assert!(f.write() == f.write(), "two writes of the same tree differ");
    let f = small();
    assert!(f.write() == f.write());
}

#[test]
fn small_image_dump_snapshot_and_digest() {
    let f = small();
    let (bytes, _tmp, image) = f.write_to_tmp();
    reference_tool("fsck.erofs", &[image.as_os_str()]);
    insta::assert_snapshot!("erofs_small_dump", erofs::dump(&bytes).unwrap());
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    assert_eq!(
        digest, "0726e66b9e75bfd63a767e3ebc87767f01525c59daee9d97235d1d72ba857bec",
        "the small EROFS image changed: update only if the format change is intentional"
    );
}

mod fuzz {
    use proptest::prelude::*;

    fn image() -> Vec<u8> {
        super::small().write()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn dump_never_panics_on_mutated_images(edits in proptest::collection::vec((0usize..3 * 4096, any::<u8>()), 1..8), cut in 0usize..4 * 4096) {
            let mut bytes = image();
            for (at, b) in edits {
                if let Some(x) = bytes.get_mut(at) {
                    *x = b;
                }
            }
            bytes.truncate(cut.max(1100));
            let _ = builder::erofs::dump(&bytes);
        }

        /// `check`'s reader (`diff::diff_file`, which opens both images with `erofs::dump`)
        /// on a corrupted or truncated image: no panic, and the damage is reported.
        #[test]
        fn check_reports_corrupted_and_truncated_images(edits in proptest::collection::vec((0usize..3 * 4096, any::<u8>()), 1..8), cut in 0usize..4 * 4096) {
            let good = image();
            let mut bad = good.clone();
            for (at, b) in edits {
                if let Some(x) = bad.get_mut(at) {
                    *x = b;
                }
            }
            bad.truncate(cut);
            let d = builder::diff::diff_file("rootfs.img", &good, &bad);
            prop_assert!(bad == good || !d.is_empty(), "no difference reported");
        }

        /// A truncated image is an error, not a panic (and not a silently short tree).
        #[test]
        fn a_truncated_image_is_an_error(cut in 0usize..2 * 4096) {
            let bytes = image();
            prop_assume!(cut < bytes.len());
            prop_assert!(builder::erofs::dump(&bytes[..cut]).is_err());
        }

        #[test]
        fn dump_never_panics_on_arbitrary_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..9000), root in any::<u16>()) {
            if bytes.len() >= 1152 {
                // Give the parser a valid magic and block size so it goes past the superblock.
                bytes[1024..1028].copy_from_slice(&0xE0F5_E1E2u32.to_le_bytes());
                bytes[1036] = 12;
                bytes[1037] = 0;
                bytes[1038..1040].copy_from_slice(&root.to_le_bytes());
                bytes[1104..1108].fill(0);
            }
            let _ = builder::erofs::dump(&bytes);
        }
    }
}

/// Contents read from host files, for the comparison with mkfs.erofs.
struct HostFiles(BTreeMap<builder::tree::Content, PathBuf>);

impl builder::tree::ContentSource for HostFiles {
    fn open(
        &self,
        content: &builder::tree::Content,
    ) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        Ok(Box::new(fs_err::File::open(&self.0[content])?))
    }
}

/// Reads a host directory into a tree (no xattrs), hard links by (dev, inode).
fn host_dir(
    path: &Path,
    tree: &mut Tree,
    files: &mut HostFiles,
    links: &mut BTreeMap<(u64, u64), LeafId>,
) -> Directory {
    let st = fs_err::symlink_metadata(path).unwrap();
    let mut d = Directory {
        meta: meta(st.mode() & 0o7777, st.uid(), st.gid()),
        entries: BTreeMap::new(),
    };
    for e in fs_err::read_dir(path).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let st = fs_err::symlink_metadata(&p).unwrap();
        let name = e.file_name().as_bytes().to_vec();
        if st.is_dir() {
            d.entries
                .insert(name, Entry::Directory(host_dir(&p, tree, files, links)));
            continue;
        }
        if let Some(id) = links.get(&(st.dev(), st.ino())) {
            d.entries.insert(name, Entry::Leaf(*id));
            continue;
        }
        let ft = st.file_type();
        let kind = if ft.is_file() {
            let mut hasher = sha2::Sha256::new();
            std::io::copy(&mut fs_err::File::open(&p).unwrap(), &mut hasher).unwrap();
            let sha256: [u8; 32] = hasher.finalize().into();
            let c = builder::tree::Content::hashed(st.len(), sha256);
            files.0.insert(c, p.clone());
            LeafKind::Regular(c)
        } else if ft.is_symlink() {
            LeafKind::Symlink(
                fs_err::read_link(&p)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if ft.is_char_device() {
            LeafKind::CharDevice(st.rdev())
        } else if ft.is_block_device() {
            LeafKind::BlockDevice(st.rdev())
        } else if ft.is_fifo() {
            LeafKind::Fifo
        } else {
            LeafKind::Socket
        };
        let id = tree.push_leaf(Leaf {
            meta: meta(st.mode() & 0o7777, st.uid(), st.gid()),
            kind,
        });
        links.insert((st.dev(), st.ino()), id);
        d.entries.insert(name, Entry::Leaf(id));
    }
    d
}

/// Writes a host directory (`EROFS_COMPARE_DIR`, default /usr/share) with this writer and
/// with mkfs.erofs 1.5, checks both with fsck.erofs, compares their extractions with
/// `diff -r`, and prints sizes and times. A measurement, not a gate: run with `--ignored`.
#[test]
#[ignore = "slow: reads and writes a whole host directory"]
#[allow(clippy::print_stdout)] // The numbers are the output.
fn compare_with_mkfs_erofs() {
    let dir = PathBuf::from(std::env::var_os("EROFS_COMPARE_DIR").unwrap_or("/usr/share".into()));
    let mut tree = Tree::new();
    let mut files = HostFiles(BTreeMap::new());
    tree.root = host_dir(&dir, &mut tree, &mut files, &mut BTreeMap::new());
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours.erofs");
    let theirs = tmp.path().join("theirs.erofs");

    let t = std::time::Instant::now();
    let mut out = std::io::BufWriter::new(fs_err::File::create(&ours).unwrap());
    let info = erofs::write(&tree, &options(), &files, &mut out).unwrap();
    std::io::Write::flush(&mut out).unwrap();
    drop(out);
    let ours_time = t.elapsed();

    let t = std::time::Instant::now();
    reference_tool(
        "mkfs.erofs",
        &[
            "-T0".as_ref(),
            "-x-1".as_ref(),
            theirs.as_os_str(),
            dir.as_os_str(),
        ],
    );
    let theirs_time = t.elapsed();
    let theirs_size = fs_err::metadata(&theirs).unwrap().len();

    for (img, name) in [(&ours, "ours"), (&theirs, "theirs")] {
        reference_tool("fsck.erofs", &[img.as_os_str()]);
        let arg = format!("--extract={}", tmp.path().join(name).display());
        reference_tool("fsck.erofs", &[arg.as_ref(), img.as_os_str()]);
    }
    reference_tool(
        "diff",
        &[
            "-r".as_ref(),
            "--no-dereference".as_ref(),
            tmp.path().join("ours").as_os_str(),
            tmp.path().join("theirs").as_os_str(),
        ],
    );
    println!(
        "{}: ours {} bytes in {:?}, mkfs.erofs {} bytes in {:?} (time ratio {:.2}, size ratio {:.4})",
        dir.display(),
        info.size,
        ours_time,
        theirs_size,
        theirs_time,
        ours_time.as_secs_f64() / theirs_time.as_secs_f64(),
        info.size as f64 / theirs_size as f64
    );
}

/// Creates `d` on the host file system at `path` (we run as root: owners, devices, and
/// trusted./security. xattrs are kept), hard links as hard links.
fn materialize(f: &Fixture, d: &Directory, path: &Path, first: &mut BTreeMap<LeafId, PathBuf>) {
    for (name, entry) in &d.entries {
        let p = path.join(OsStr::from_bytes(name));
        match entry {
            Entry::Directory(sub) => {
                fs_err::create_dir(&p).unwrap();
                materialize(f, sub, &p, first);
            }
            Entry::Leaf(id) => {
                if let Some(target) = first.get(id) {
                    fs_err::hard_link(target, &p).unwrap();
                    continue;
                }
                first.insert(*id, p.clone());
                let leaf = f.tree.leaf(*id);
                let dev = |kind: &str, rdev: u64| {
                    let (major, minor) =
                        ((rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & !0xff));
                    reference_tool(
                        "mknod",
                        &[
                            p.as_os_str(),
                            kind.as_ref(),
                            major.to_string().as_ref(),
                            minor.to_string().as_ref(),
                        ],
                    );
                };
                match &leaf.kind {
                    LeafKind::Regular(c) => fs_err::write(&p, &f.blobs[c]).unwrap(),
                    LeafKind::Symlink(t) => {
                        std::os::unix::fs::symlink(OsStr::from_bytes(t), &p).unwrap()
                    }
                    LeafKind::CharDevice(r) => dev("c", *r),
                    LeafKind::BlockDevice(r) => dev("b", *r),
                    LeafKind::Fifo => drop(reference_tool("mkfifo", &[p.as_os_str()])),
                    LeafKind::Socket => drop(std::os::unix::net::UnixListener::bind(&p).unwrap()),
                }
                set_meta(&p, &leaf.meta, matches!(leaf.kind, LeafKind::Symlink(_)));
            }
        }
    }
    set_meta(path, &d.meta, false);
}

fn set_meta(p: &Path, m: &Metadata, symlink: bool) {
    std::os::unix::fs::lchown(p, Some(m.uid), Some(m.gid)).unwrap();
    if !symlink {
        // After chown, which clears setuid/setgid.
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(p, std::fs::Permissions::from_mode(m.mode)).unwrap();
    }
    for (name, value) in &m.xattrs {
        let name = String::from_utf8(name.clone()).unwrap();
        let value = format!("0x{}", hex::encode(value));
        let value = if value == "0x" {
            "\"\"".to_owned()
        } else {
            value
        };
        reference_tool(
            "setfattr",
            &[
                "-h".as_ref(),
                "-n".as_ref(),
                name.as_ref(),
                "-v".as_ref(),
                value.as_ref(),
                p.as_os_str(),
            ],
        );
    }
}

/// Our listing of an image without what legitimately differs between two writers: inode
/// numbers, inode format, data layout and block addresses.
fn semantic_listing(image: &[u8]) -> String {
    let listing = erofs::dump(image).unwrap();
    let mut lines: Vec<String> = Vec::new();
    let mut xattrs: Vec<&str> = Vec::new();
    for l in listing.lines().skip(1) {
        if l.starts_with("  xattr ") {
            // Xattr order on disk is the writer's choice.
            xattrs.push(l);
            continue;
        }
        xattrs.sort();
        lines.extend(xattrs.drain(..).map(str::to_owned));
        let kept: Vec<&str> = l
            .split(' ')
            .filter(|w| {
                !["nid=", "inode=", "layout=", "blocks=", "mtime="]
                    .iter()
                    .any(|p| w.starts_with(p))
            })
            .collect();
        lines.push(kept.join(" "));
    }
    xattrs.sort();
    lines.extend(xattrs.drain(..).map(str::to_owned));
    lines.join("\n")
}

/// The same tree written by mkfs.erofs 1.5 (from a copy on disk) and by this writer reads
/// back the same: names, types, full modes (setuid/setgid/sticky), owners, sizes, link
/// counts, contents, symlink targets, device numbers and xattrs. This covers in CI what
/// the kernel mount test covers where loop devices exist.
#[test]
fn same_listing_as_mkfs_erofs() {
    let f = varied_with(false);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs_err::create_dir(&src).unwrap();
    materialize(&f, &f.tree.root, &src, &mut BTreeMap::new());
    let theirs = tmp.path().join("theirs.erofs");
    reference_tool(
        "mkfs.erofs",
        &[
            format!("-T{EPOCH}").as_ref(),
            theirs.as_os_str(),
            src.as_os_str(),
        ],
    );
    // mkfs.erofs makes the same tail-packing choice for each inode (`Layout: 2` inline,
    // `0` plain), as dump.erofs reports it.
    let ours_bytes = f.write();
    let ours_image = tmp.path().join("ours.erofs");
    fs_err::write(&ours_image, &ours_bytes).unwrap();
    let mut inline = 0;
    for path in [
        "/",
        "/bin",
        "/bin/su",
        "/big",
        "/many",
        "/wide",
        "/xattrs",
        "/links/long",
        "/sizes",
        "/sizes/4000",
        "/sizes/4095",
        "/sizes/4096",
        "/sizes/4097",
        "/sizes/8191",
        "/sizes/8292",
        "/sizes/large-xattrs",
        "/sizes/nofit-xattrs",
    ] {
        let report = |image: &Path| {
            let got = fields(&reference_tool(
                "dump.erofs",
                &[format!("--path={path}").as_ref(), image.as_os_str()],
            ));
            (got["Layout"].clone(), got["Size"].clone())
        };
        let (ours, theirs) = (report(&ours_image), report(&theirs));
        assert_eq!(
            ours, theirs,
            "{path}: (layout, size), ours then mkfs.erofs's"
        );
        if ours.0 == "2" && ours.1.parse::<u64>().unwrap() > 4096 {
            inline += 1;
        }
    }
    assert!(
        inline >= 5,
        "only {inline} tail-packed inodes above one block"
    );
    let theirs = semantic_listing(&fs_err::read(&theirs).unwrap());
    let ours = semantic_listing(&ours_bytes);
    for (a, b) in ours.lines().zip(theirs.lines()) {
        assert_eq!(a, b, "ours, then mkfs.erofs's");
    }
    assert_eq!(ours.lines().count(), theirs.lines().count());
}
/// Many small and medium files (100 B to 64 KiB, log-uniform) in a few directories, and one
/// large file: where tail packing decides the image size.
fn mixed() -> Fixture {
    let mut f = Fixture::default();
    let mut x = 0x9e37_79b9u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut root = Vec::new();
    for d in 0..12u32 {
        let mut files = Vec::new();
        for i in 0..30u32 {
            // 10^(2 + 2.8 u), u uniform in [0, 1): 100 B .. 63 KiB.
            let u = f64::from(next() % 10_000) / 10_000.0;
            let size = 10f64.powf(2.0 + 2.8 * u) as usize;
            let id = f.file(meta(0o644, 0, 0), patterned(size, next()));
            files.push((format!("f{i:02}").into_bytes(), Entry::Leaf(id)));
        }
        root.push((format!("d{d:02}").into_bytes(), files));
    }
    let large = f.file(meta(0o644, 0, 0), patterned(2 * 1024 * 1024 + 777, 99));
    let mut entries: Vec<(&[u8], Entry)> = vec![(b"large", Entry::Leaf(large))];
    let dirs: Vec<(Vec<u8>, Entry)> = root
        .into_iter()
        .map(|(name, files)| {
            let e = files
                .iter()
                .map(|(n, e)| (n.as_slice(), e.clone()))
                .collect();
            (name, dir(meta(0o755, 0, 0), e))
        })
        .collect();
    entries.extend(dirs.iter().map(|(n, e)| (n.as_slice(), e.clone())));
    let Entry::Directory(root) = dir(meta(0o755, 0, 0), entries) else {
        unreachable!()
    };
    f.tree.root = root;
    f
}

/// Tail packing keeps our images within 1 % of mkfs.erofs's (default options, `-T0`) for the
/// same tree; without it, each file's last partial block costs a whole block.
#[test]
fn image_is_no_larger_than_mkfs_erofs_makes() {
    let f = mixed();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs_err::create_dir(&src).unwrap();
    materialize(&f, &f.tree.root, &src, &mut BTreeMap::new());
    let theirs = tmp.path().join("theirs.erofs");
    reference_tool(
        "mkfs.erofs",
        &["-T0".as_ref(), theirs.as_os_str(), src.as_os_str()],
    );
    let theirs_size = fs_err::metadata(&theirs).unwrap().len();
    let ours = write_image(tmp.path(), &f.write());
    reference_tool("fsck.erofs", &[ours.as_os_str()]);
    let ours_size = fs_err::metadata(&ours).unwrap().len();
    assert!(
        ours_size as f64 <= theirs_size as f64 * 1.01,
        "ours {ours_size} bytes, mkfs.erofs's {theirs_size} (ratio {:.4})",
        ours_size as f64 / theirs_size as f64
    );
}

use std::collections::BTreeMap;

use super::*;
use crate::tree::{Content, Directory, Entry, Leaf, LeafKind, MemoryContent, Metadata};

fn options() -> Options {
    Options {
        epoch: 1_700_000_000,
        uuid: [7; 16],
    }
}

/// A regular leaf of `size` bytes whose content (all-zero digest) the test's store makes up.
fn unread_file(tree: &mut Tree, size: u64) -> crate::tree::LeafId {
    tree.push_leaf(Leaf {
        meta: Metadata::default(),
        kind: LeafKind::Regular(Content::hashed(size, [0; 32])),
    })
}

fn file(tree: &mut Tree, store: &mut MemoryContent, name: &[u8], data: &[u8]) {
    let c = store.insert(data.to_vec());
    let id = tree.push_leaf(Leaf {
        meta: Metadata {
            mode: 0o644,
            ..Default::default()
        },
        kind: LeafKind::Regular(c),
    });
    tree.root.entries.insert(name.to_vec(), Entry::Leaf(id));
}

fn write_err(tree: &Tree, store: &dyn ContentSource) -> Error {
    write(tree, &options(), store, &mut Vec::new()).expect_err("write should fail")
}

#[test]
fn rdev_encoding_matches_kernel_new_encode_dev() {
    // glibc makedev(8, 1) = 0x801; new_encode_dev(8, 1) = 0x801.
    assert_eq!(format::encode_rdev(0x801), Some(0x801));
    // makedev(1, 0x12345) = (0x12345 & 0xff) | (1 << 8) | ((0x12345 & !0xff) << 12).
    let glibc = 0x45 | (1 << 8) | ((0x12300u64) << 12);
    let enc = format::encode_rdev(glibc).unwrap();
    assert_eq!(format::decode_rdev(enc), (1, 0x12345));
    // major 4096 does not fit.
    assert_eq!(format::encode_rdev(4096u64 << 32), None);
}

#[test]
fn name_too_long_names_the_path() {
    let mut tree = Tree::new();
    let mut store = MemoryContent::default();
    file(&mut tree, &mut store, &[b'a'; 256], b"x");
    match write_err(&tree, &store) {
        Error::NameTooLong { path, len: 256 } => assert!(path.starts_with("/aaa")),
        e => panic!("{e:?}"),
    }
}

#[test]
fn invalid_names_are_rejected() {
    for name in [&b"a/b"[..], b".", b"..", b"", b"a\0b"] {
        let mut tree = Tree::new();
        let mut store = MemoryContent::default();
        file(&mut tree, &mut store, name, b"x");
        assert!(
            matches!(write_err(&tree, &store), Error::InvalidName { .. }),
            "{name:?}"
        );
    }
}

/// A source whose streams give `delta` bytes more (or fewer) than declared.
struct Lying(isize);

impl ContentSource for Lying {
    fn open(&self, content: &Content) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        let n = (content.size as isize + self.0) as usize;
        Ok(Box::new(std::io::repeat(1).take(n as u64)))
    }
}

use std::io::Read as _;

#[test]
fn short_and_long_content_streams_name_the_file() {
    for size in [10u64, 100_000] {
        let mut tree = Tree::new();
        let id = unread_file(&mut tree, size);
        let sub = Directory {
            meta: Metadata::default(),
            entries: BTreeMap::from([(b"f".to_vec(), Entry::Leaf(id))]),
        };
        tree.root
            .entries
            .insert(b"d".to_vec(), Entry::Directory(sub));
        match write_err(&tree, &Lying(-1)) {
            Error::ContentTooShort {
                path,
                expected,
                actual,
            } => {
                assert_eq!((path.as_str(), expected, actual), ("/d/f", size, size - 1));
            }
            e => panic!("{e:?}"),
        }
        match write_err(&tree, &Lying(1)) {
            Error::ContentTooLong { path, expected } => {
                assert_eq!((path.as_str(), expected), ("/d/f", size))
            }
            e => panic!("{e:?}"),
        }
        write(&tree, &options(), &Lying(0), &mut Vec::new()).unwrap();
    }
}

#[test]
fn unsupported_xattr_prefix_is_an_error() {
    let mut tree = Tree::new();
    tree.root
        .meta
        .xattrs
        .insert(b"system.foo".to_vec(), b"v".to_vec());
    assert!(matches!(
        write_err(&tree, &MemoryContent::default()),
        Error::UnsupportedXattr { .. }
    ));
}

#[test]
fn dangling_leaf_is_an_error_not_a_panic() {
    let mut tree = Tree::new();
    tree.root
        .entries
        .insert(b"x".to_vec(), Entry::Leaf(crate::tree::LeafId(5)));
    assert!(matches!(
        write_err(&tree, &MemoryContent::default()),
        Error::DanglingLeaf { leaf: 5, .. }
    ));
}

#[test]
fn empty_tree_is_one_block_and_dumps() {
    let mut out = Vec::new();
    let info = write(
        &Tree::new(),
        &options(),
        &MemoryContent::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(info.size, 4096);
    assert_eq!(out.len(), 4096);
    let d = dump(&out).unwrap();
    assert!(
        d.contains("/ nid=36 dir mode=0755 uid=0 gid=0 size=27 nlink=2"),
        "{d}"
    );
}

#[test]
fn big_ids_use_extended_inodes() {
    let mut tree = Tree::new();
    tree.root.meta.uid = 100_000;
    let mut out = Vec::new();
    write(&tree, &options(), &MemoryContent::default(), &mut out).unwrap();
    let d = dump(&out).unwrap();
    assert!(d.contains("uid=100000 gid=0 size=27 nlink=2 inode=extended layout=inline mtime=1700000000.000000000"), "{d}");
}

/// Keeps the first `keep` bytes written and counts the rest.
struct Prefix {
    keep: usize,
    bytes: Vec<u8>,
    total: u64,
}

impl std::io::Write for Prefix {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let room = self.keep.saturating_sub(self.bytes.len()).min(b.len());
        self.bytes.extend_from_slice(&b[..room]);
        self.total += b.len() as u64;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn file_over_4_gib_gets_an_extended_inode_with_a_64_bit_size() {
    let size = (5u64 << 30) + 7;
    let mut tree = Tree::new();
    let id = unread_file(&mut tree, size);
    tree.root
        .entries
        .insert(b"weights".to_vec(), Entry::Leaf(id));
    let mut out = Prefix {
        keep: 8192,
        bytes: Vec::new(),
        total: 0,
    };
    let info = write(&tree, &options(), &Lying(0), &mut out).unwrap();
    // One metadata block, then the file's whole blocks (its 7-byte tail is inline).
    assert_eq!(info.size, 4096 + size / 4096 * 4096);
    assert_eq!(out.total, info.size);
    let img = dump::Image::open_prefix(&out.bytes).unwrap();
    let root = img.inode(36).unwrap();
    let entries = img.dir_entries(&root, "/").unwrap();
    let file = img.inode(entries[2].nid).unwrap();
    assert!(file.inode.extended);
    assert_eq!(file.inode.size, size);
    assert_eq!(file.inode.i_u, 1);
    assert_eq!(file.inode.mtime, options().epoch);
}

#[test]
fn deep_trees_do_not_overflow_the_stack() {
    let mut dir = Directory {
        meta: Metadata {
            mode: 0o755,
            ..Default::default()
        },
        entries: BTreeMap::new(),
    };
    for _ in 0..3000 {
        let parent = Directory {
            meta: dir.meta.clone(),
            entries: BTreeMap::from([(b"d".to_vec(), Entry::Directory(dir))]),
        };
        dir = parent;
    }
    let tree = Tree {
        root: dir,
        leaves: Vec::new(),
    };
    let mut out = Vec::new();
    write(&tree, &options(), &MemoryContent::default(), &mut out).unwrap();
    let listing = dump(&out).unwrap();
    assert_eq!(listing.lines().count(), 1 + 3001);
    // Dropping the nested `Directory` values recurses (derived drop glue, not this module).
    std::mem::forget(tree);
}

/// Tail packing: a file's last partial block goes inline after its inode when it fits in
/// the rest of the inode's block (inode + xattrs + tail <= 4096), its whole blocks to the
/// data area; a tail that does not fit, or a size that is a multiple of 4096, stays
/// `FLAT_PLAIN`. Image sizes follow from the rule: one metadata block plus the data blocks.
#[test]
fn tails_go_inline_when_they_fit() {
    // Total blocks: the metadata area (the root and its 40 bytes of entries end at byte
    // 1224, so the file's inode starts at 1248) and the data blocks.
    for (size, layout, blocks) in [
        (4097u64, "inline", 1 + 1u64),
        (8192 + 100, "inline", 1 + 2),
        // 32-byte inode + 4064 = 4096 fits one block exactly, not after byte 1248: the
        // inode moves to the metadata area's second block.
        (4096 + 4064, "inline", 2 + 1),
        (4096 + 4065, "plain", 1 + 2),
        (8191, "plain", 1 + 2),
        (8192, "plain", 1 + 2),
    ] {
        let mut tree = Tree::new();
        let mut store = MemoryContent::default();
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        file(&mut tree, &mut store, b"f", &data);
        let mut out = Vec::new();
        let info = write(&tree, &options(), &store, &mut out).unwrap();
        assert_eq!(info.size, 4096 * blocks, "{size}");
        let img = dump::Image::open(&out).unwrap();
        let root = img.inode(36).unwrap();
        let entries = img.dir_entries(&root, "/").unwrap();
        let f = img.inode(entries[2].nid).unwrap();
        assert_eq!(img.data(&f).unwrap(), data, "{size}");
        let listing = dump(&out).unwrap();
        let line = listing.lines().find(|l| l.starts_with("/f ")).unwrap();
        assert!(line.contains(&format!("layout={layout}")), "{size}: {line}");
    }
}

#[test]
fn file_extents_say_where_each_file_s_bytes_are() {
    // Empty, all inline, inline tail after blocks, whole blocks, a tail too long to inline
    // (padded last block), two files with the same bytes (each has its own blocks).
    let sizes = [
        0u64,
        100,
        4097,
        8192,
        4096 + 4065,
        3 * 4096 + 17,
        3 * 4096 + 17,
    ];
    let mut tree = Tree::new();
    let mut store = MemoryContent::default();
    let mut files = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let data: Vec<u8> = (0..size)
            .map(|j| (j * 13 % 251) as u8 ^ (i as u8).min(5))
            .collect();
        file(&mut tree, &mut store, format!("f{i}").as_bytes(), &data);
        files.push(data);
    }
    let planned = plan(&tree, &options()).unwrap();
    let extents = planned.file_extents();
    let mut out = Vec::new();
    planned.emit(&store, &mut out).unwrap();
    assert_eq!(extents.len(), files.len());
    let at = |r: &std::ops::Range<u64>| &out[r.start as usize..r.end as usize];
    for data in &files {
        let e = extents
            .iter()
            .find(|e| [at(&e.data), at(&e.tail)].concat() == *data)
            .unwrap_or_else(|| panic!("no extent gives the {}-byte file", data.len()));
        assert_eq!(e.content.size, data.len() as u64);
        assert_eq!(e.data.start % 4096, 0);
    }
    // Tail-packed files have both parts, in the metadata area first.
    let packed = extents.iter().find(|e| e.content.size == 4097).unwrap();
    assert_eq!(
        (
            packed.data.end - packed.data.start,
            packed.tail.end - packed.tail.start
        ),
        (4096, 1)
    );
    assert!(packed.tail.end <= packed.data.start);
    let twins: Vec<_> = extents
        .iter()
        .filter(|e| e.content.size == 3 * 4096 + 17)
        .collect();
    assert_eq!(twins.len(), 2);
    assert_ne!(twins[0].data, twins[1].data);
}

/// A source whose streams give zeros while its positioned reads give ones: a file that
/// changed between the read of its inline tail and the stream of its blocks.
struct Fickle;

impl ContentSource for Fickle {
    fn open(&self, content: &Content) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        Ok(Box::new(std::io::repeat(0).take(content.size)))
    }

    fn read_at(&self, _: &Content, _: u64, buf: &mut [u8]) -> std::io::Result<()> {
        buf.fill(1);
        Ok(())
    }
}

#[test]
fn a_tail_that_changed_is_an_error() {
    let mut tree = Tree::new();
    let id = unread_file(&mut tree, 5000);
    tree.root.entries.insert(b"f".to_vec(), Entry::Leaf(id));
    match write_err(&tree, &Fickle) {
        Error::ContentChanged { path } => assert_eq!(path, "/f"),
        e => panic!("{e:?}"),
    }
    // Whole blocks only (no tail read): nothing to disagree about.
    let mut tree = Tree::new();
    let id = unread_file(&mut tree, 8192);
    tree.root.entries.insert(b"f".to_vec(), Entry::Leaf(id));
    write(&tree, &options(), &Fickle, &mut Vec::new()).unwrap();
}

/// Best-fit placement: a record that does not fit the rest of block 0 opens block 1; later
/// records go to the fullest block with room for them, filling block 0's hole only when
/// block 1 has no room left.
#[test]
fn records_fill_earlier_holes_best_fit() {
    let mut tree = Tree::new();
    let mut store = MemoryContent::default();
    // Root: 32 + 66 bytes of entries (5 dirents, names ". .. a b c"), 128 with padding, at
    // 1152; "a": 32 + 3500 > 4096 - 1280, so block 1.
    file(&mut tree, &mut store, b"a", &[1; 4096 + 3500]);
    file(&mut tree, &mut store, b"b", &[2; 100]);
    file(&mut tree, &mut store, b"c", &[3; 600]);
    let mut out = Vec::new();
    write(&tree, &options(), &store, &mut out).unwrap();
    let listing = dump(&out).unwrap();
    let nid = |name: &str| -> u64 {
        let line = listing
            .lines()
            .find(|l| l.starts_with(&format!("/{name} ")))
            .unwrap();
        line.split(' ')
            .find_map(|w| w.strip_prefix("nid="))
            .unwrap()
            .parse()
            .unwrap()
    };
    // a at 4096 (nid 128), 3532 bytes, 3552 padded; b (132 bytes, 160 padded) fits the
    // fuller block 1 after it (7648, nid 239); c (632, 640 padded) does not fit block 1's
    // remaining 384 bytes and fills block 0's hole after the root (1280, nid 40).
    assert_eq!((nid("a"), nid("b"), nid("c")), (128, 239, 40), "{listing}");
    // Two metadata blocks and a's whole block.
    assert_eq!(out.len(), 3 * 4096);
}

/// A source in memory that lists the contents released to it and refuses to read one again.
struct Releasing {
    inner: MemoryContent,
    released: std::sync::Mutex<Vec<Content>>,
}

impl Releasing {
    fn check(&self, content: &Content) -> std::io::Result<()> {
        if self.released.lock().unwrap().contains(content) {
            return Err(std::io::Error::other("read after its release"));
        }
        Ok(())
    }
}

impl ContentSource for Releasing {
    fn open(&self, content: &Content) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        self.check(content)?;
        self.inner.open(content)
    }

    fn read_at(&self, content: &Content, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.check(content)?;
        self.inner.read_at(content, offset, buf)
    }

    fn release(&self, content: &Content) {
        self.released.lock().unwrap().push(*content);
    }
}

/// Each content with blocks in the data area is released once, after the last inode that
/// holds it (two files with the same content, a hard link, a tail-packed file); a content
/// stored wholly inline is not (it is small, and read in the metadata pass). The image is the
/// one a source that never frees anything gives.
#[test]
fn contents_are_released_once_after_their_last_read() {
    let mut tree = Tree::new();
    let mut store = MemoryContent::default();
    let data = |size: usize, seed: u8| -> Vec<u8> {
        (0..size).map(|j| (j * 7 % 253) as u8 ^ seed).collect()
    };
    let twin = data(3 * 4096 + 17, 1);
    for (name, bytes) in [
        (&b"a"[..], twin.clone()),
        (b"b", twin.clone()),
        (b"c", data(100, 2)),
        (b"d", data(2 * 4096, 3)),
        (b"e", data(4097, 4)),
    ] {
        file(&mut tree, &mut store, name, &bytes);
    }
    let Some(Entry::Leaf(a)) = tree.root.entries.get(&b"a"[..]).cloned() else {
        panic!("a is a file");
    };
    tree.root
        .entries
        .insert(b"z-link-to-a".to_vec(), Entry::Leaf(a));
    let mut expected = Vec::new();
    write(&tree, &options(), &store, &mut expected).unwrap();

    let releasing = Releasing {
        inner: store.clone(),
        released: Default::default(),
    };
    let mut out = Vec::new();
    write(&tree, &options(), &releasing, &mut out).unwrap();
    assert!(out == expected, "the image differs");
    let mut released: Vec<u64> = releasing
        .released
        .into_inner()
        .unwrap()
        .iter()
        .map(|c| c.size)
        .collect();
    released.sort_unstable();
    assert_eq!(released, [4097, 2 * 4096, 3 * 4096 + 17]);
}

//! `tree::apply`: OCI layer semantics, one rule (or one bad input) per test.
//!
//! Expected trees are written out by hand from the OCI image spec's layer rules
//! (image-spec `layer.md`: changesets, whiteouts, opaque whiteouts) and from what tar
//! extractors do; the flattening as a whole is cross-checked against umoci in `oci.rs`.

use std::collections::BTreeMap;
use std::io::Read;

use builder::content::ContentStore;
use builder::tree::apply::{apply_layer, insert_file, ApplyError};
use builder::tree::{ContentSource, Directory, Entry, Leaf, LeafKind, Metadata, Tree};

/// Builds tar layers entry by entry; `raw` writes a header verbatim (no path checks).
pub(crate) struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    pub(crate) fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h
    }

    pub(crate) fn file(self, path: &str, data: &[u8]) -> Self {
        self.file_owned(path, data, 0o644, 0, 0)
    }

    pub(crate) fn file_owned(
        mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid, data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub(crate) fn file_xattrs(mut self, path: &str, data: &[u8], xattrs: &[(&str, &[u8])]) -> Self {
        let recs: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(path, data)
    }

    pub(crate) fn dir(self, path: &str, mode: u32) -> Self {
        self.dir_owned(path, mode, 0, 0)
    }

    pub(crate) fn dir_owned(mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, uid, gid, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub(crate) fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(crate) fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(crate) fn device(
        mut self,
        path: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
    ) -> Self {
        let mut h = Self::header(kind, 0o600, 0, 0, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// A header whose name field is written verbatim (hostile paths such as `../x`).
    pub(crate) fn raw(
        mut self,
        kind: tar::EntryType,
        name: &[u8],
        link: &[u8],
        data: &[u8],
    ) -> Self {
        let mut h = Self::header(kind, 0o644, 0, 0, data.len() as u64);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub(crate) fn store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path().join("objects")).unwrap();
    (dir, store)
}

pub(crate) fn apply(
    tree: &mut Tree,
    store: &ContentStore,
    layer: Vec<u8>,
) -> Result<(), ApplyError> {
    apply_layer(tree, &mut layer.as_slice(), "test-layer", store)
}

fn build(layers: Vec<Vec<u8>>) -> (Tree, tempfile::TempDir, ContentStore) {
    let (dir, store) = store();
    let mut tree = Tree::new();
    for l in layers {
        apply(&mut tree, &store, l).unwrap();
    }
    (tree, dir, store)
}

/// One line per path: `/path kind mode uid:gid [payload] [xattrs] [#inode for hard links]`.
pub(crate) fn dump(tree: &Tree, store: &ContentStore) -> Vec<String> {
    let mut out = Vec::new();
    let mut links: BTreeMap<usize, usize> = BTreeMap::new();
    count_links(&tree.root, &mut links);
    dump_dir(tree, store, &tree.root, "", &links, &mut out);
    out
}

fn count_links(dir: &Directory, links: &mut BTreeMap<usize, usize>) {
    for e in dir.entries.values() {
        match e {
            Entry::Directory(d) => count_links(d, links),
            Entry::Leaf(id) => *links.entry(id.0).or_default() += 1,
        }
    }
}

fn meta_str(m: &Metadata) -> String {
    let mut s = format!("{:o} {}:{}", m.mode, m.uid, m.gid);
    for (k, v) in &m.xattrs {
        s.push_str(&format!(
            " {}={}",
            String::from_utf8_lossy(k),
            String::from_utf8_lossy(v)
        ));
    }
    s
}

fn dump_dir(
    tree: &Tree,
    store: &ContentStore,
    dir: &Directory,
    prefix: &str,
    links: &BTreeMap<usize, usize>,
    out: &mut Vec<String>,
) {
    out.push(format!("{}/ dir {}", prefix, meta_str(&dir.meta)));
    for (name, e) in &dir.entries {
        let path = format!("{prefix}/{}", String::from_utf8_lossy(name));
        match e {
            Entry::Directory(d) => dump_dir(tree, store, d, &path, links, out),
            Entry::Leaf(id) => {
                let leaf = tree.leaf(*id);
                let payload = match &leaf.kind {
                    LeafKind::Regular(c) => {
                        let mut s = String::new();
                        store.open(c).unwrap().read_to_string(&mut s).unwrap();
                        format!("file {s:?}")
                    }
                    LeafKind::Symlink(t) => format!("symlink -> {}", String::from_utf8_lossy(t)),
                    LeafKind::CharDevice(r) => format!("chr {r:#x}"),
                    LeafKind::BlockDevice(r) => format!("blk {r:#x}"),
                    LeafKind::Fifo => "fifo".into(),
                    LeafKind::Socket => "socket".into(),
                };
                let mut line = format!("{path} {payload} {}", meta_str(&leaf.meta));
                if links.get(&id.0).copied().unwrap_or(0) > 1 {
                    line.push_str(&format!(" #{}", id.0));
                }
                out.push(line);
            }
        }
    }
}

/// Applies `layers` in order to an empty tree and compares its dump with `want`
/// (one line per path, as [`dump`] writes them).
fn assert_tree(layers: Vec<Vec<u8>>, want: &str) {
    let (tree, _d, store) = build(layers);
    assert_eq!(dump(&tree, &store), lines(want));
}

/// Applies one layer to an empty tree and returns why it was refused.
fn refused(layer: Vec<u8>) -> ApplyError {
    let (_d, store) = store();
    apply(&mut Tree::new(), &store, layer).unwrap_err()
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn every_entry_type_with_metadata() {
    let long = format!("d/{}", "n".repeat(150));
    let layer = Layer::new()
        .dir_owned("d", 0o40751, 5, 6)
        .file_owned("d/f", b"hello", 0o104755, 1000, 70000)
        .file(&long, b"long")
        .symlink("d/s", "../../nowhere/../x")
        .hardlink("d/h", "d/f")
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/loop300", tar::EntryType::Block, 7, 300)
        .device("p", tar::EntryType::Fifo, 0, 0)
        .file_xattrs(
            "x",
            b"",
            &[("user.a", b"1"), ("security.capability", b"\x01\x02")],
        )
        .finish();
    let (tree, _d, store) = build(vec![layer]);
    let want = lines(&format!(
        r#"
        / dir 755 0:0
        /d/ dir 751 5:6
        /d/f file "hello" 4755 1000:70000 #0
        /d/h file "hello" 4755 1000:70000 #0
        /d/{n} file "long" 644 0:0
        /d/s symlink -> ../../nowhere/../x 777 0:0
        /dev/ dir 755 0:0
        /dev/loop300 blk 0x10072c 600 0:0
        /dev/null chr 0x103 600 0:0
        /p fifo 600 0:0
        /x file "" 644 0:0 security.capability={c} user.a=1
        "#,
        n = "n".repeat(150),
        c = "\u{1}\u{2}"
    ));
    // rdev values from glibc: python3 -c 'import os; print(hex(os.makedev(7, 300)))' (0x10072c).
    assert_eq!(dump(&tree, &store), want);
}

#[test]
fn whiteout_removes_lower_entry_and_never_appears() {
    let l1 = Layer::new()
        .file("a/keep", b"k")
        .file("a/gone", b"g")
        .dir("a/sub", 0o755)
        .file("a/sub/x", b"x")
        .finish();
    let l2 = Layer::new()
        .file("a/.wh.gone", b"")
        .file("a/.wh.sub", b"")
        .file("a/.wh.never-existed", b"")
        .finish();
    assert_tree(
        vec![l1, l2],
        r#"
        / dir 755 0:0
        /a/ dir 755 0:0
        /a/keep file "k" 644 0:0
        "#,
    );
}

#[test]
fn whiteout_only_hides_lower_layers() {
    // image-spec layer.md: a whiteout applies only to lower layers; the same layer's entry stays,
    // whether it comes before or after the whiteout.
    let l1 = Layer::new()
        .file("a/x", b"lower")
        .dir("a/d", 0o755)
        .file("a/d/lower", b"l")
        .finish();
    let l2 = Layer::new()
        .file("a/x", b"upper")
        .file("a/.wh.x", b"")
        .file("a/d/new", b"n")
        .file("a/.wh.d", b"")
        .finish();
    assert_tree(
        vec![l1, l2],
        r#"
        / dir 755 0:0
        /a/ dir 755 0:0
        /a/d/ dir 755 0:0
        /a/d/new file "n" 644 0:0
        /a/x file "upper" 644 0:0
        "#,
    );
}

#[test]
fn opaque_dir_keeps_only_this_layers_entries() {
    let l1 = Layer::new()
        .dir("o", 0o700)
        .file("o/lower1", b"1")
        .dir("o/sub", 0o755)
        .file("o/sub/lower2", b"2")
        .file("other", b"o")
        .finish();
    let l2 = Layer::new()
        .dir("o", 0o750)
        .file("o/before", b"b")
        .dir("o/sub", 0o711)
        .file("o/.wh..wh..opq", b"")
        .file("o/after", b"a")
        .finish();
    assert_tree(
        vec![l1, l2],
        r#"
        / dir 755 0:0
        /o/ dir 750 0:0
        /o/after file "a" 644 0:0
        /o/before file "b" 644 0:0
        /o/sub/ dir 711 0:0
        /other file "o" 644 0:0
        "#,
    );
}

#[test]
fn replacement_rules() {
    let l1 = Layer::new()
        .dir("keep", 0o700)
        .file("keep/child", b"c")
        .dir("dir2file", 0o755)
        .file("dir2file/child", b"c")
        .file("file2dir", b"f")
        .symlink("link2file", "/keep")
        .file("changed", b"old")
        .finish();
    let l2 = Layer::new()
        .dir_owned("keep", 0o755, 1, 2)
        .file("dir2file", b"now a file")
        .dir("file2dir", 0o755)
        .file("link2file", b"not a link")
        .file("changed", b"new")
        .finish();
    assert_tree(
        vec![l1, l2],
        r#"
        / dir 755 0:0
        /changed file "new" 644 0:0
        /dir2file file "now a file" 644 0:0
        /file2dir/ dir 755 0:0
        /keep/ dir 755 1:2
        /keep/child file "c" 644 0:0
        /link2file file "not a link" 644 0:0
        "#,
    );
}

#[test]
fn paths_are_normalised_and_parents_created() {
    let layer = Layer::new()
        .raw(tar::EntryType::Regular, b"/abs/f", b"", b"1")
        .raw(tar::EntryType::Regular, b"./dot/./g", b"", b"2")
        .raw(tar::EntryType::Regular, b"a/../up//h", b"", b"3")
        .raw(tar::EntryType::Directory, b"./", b"", b"")
        .finish();
    assert_tree(
        vec![layer],
        r#"
        / dir 644 0:0
        /abs/ dir 755 0:0
        /abs/f file "1" 644 0:0
        /dot/ dir 755 0:0
        /dot/g file "2" 644 0:0
        /up/ dir 755 0:0
        /up/h file "3" 644 0:0
        "#,
    );
}

#[test]
fn dotdot_above_root_is_refused() {
    let layer = Layer::new()
        .raw(tar::EntryType::Regular, b"a/../../etc/passwd", b"", b"x")
        .finish();
    let err = refused(layer);
    assert!(
        matches!(&err, ApplyError::PathEscapesRoot { path, .. } if path == "a/../../etc/passwd"),
        "{err}"
    );
    assert!(err.to_string().contains("test-layer"), "{err}");
}

#[test]
fn parents_resolve_through_symlinks_inside_the_root() {
    let l1 = Layer::new()
        .dir("usr/lib", 0o755)
        .symlink("lib", "usr/lib")
        .symlink("abs", "/usr")
        .dir("deep/er", 0o755)
        .symlink("deep/er/up", "../../usr/lib")
        .finish();
    let l2 = Layer::new()
        .file("lib/a", b"a")
        .file("abs/lib/b", b"b")
        .file("deep/er/up/c", b"c")
        .symlink("lib/self", "../../../../whatever")
        .finish();
    assert_tree(
        vec![l1, l2],
        r#"
        / dir 755 0:0
        /abs symlink -> /usr 777 0:0
        /deep/ dir 755 0:0
        /deep/er/ dir 755 0:0
        /deep/er/up symlink -> ../../usr/lib 777 0:0
        /lib symlink -> usr/lib 777 0:0
        /usr/ dir 755 0:0
        /usr/lib/ dir 755 0:0
        /usr/lib/a file "a" 644 0:0
        /usr/lib/b file "b" 644 0:0
        /usr/lib/c file "c" 644 0:0
        /usr/lib/self symlink -> ../../../../whatever 777 0:0
        "#,
    );
}

#[test]
fn symlink_climbing_out_of_the_root_is_refused() {
    let (_d, store) = store();
    let mut tree = Tree::new();
    apply(
        &mut tree,
        &store,
        Layer::new()
            .dir("a", 0o755)
            .symlink("a/out", "../../host")
            .finish(),
    )
    .unwrap();
    let err = apply(
        &mut tree,
        &store,
        Layer::new().file("a/out/file", b"x").finish(),
    )
    .unwrap_err();
    match &err {
        ApplyError::SymlinkEscapesRoot {
            path,
            symlink,
            layer,
        } => {
            assert_eq!(
                (path.as_str(), symlink.as_str(), layer.as_str()),
                ("a/out/file", "/a/out", "test-layer")
            );
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn symlink_loop_is_refused() {
    let layer = Layer::new()
        .symlink("a", "b")
        .symlink("b", "/a")
        .file("a/x", b"")
        .finish();
    let err = refused(layer);
    assert!(
        matches!(&err, ApplyError::SymlinkLoop { path, .. } if path == "a/x"),
        "{err}"
    );
}

#[test]
fn parent_that_is_a_file_is_refused() {
    let layer = Layer::new().file("f", b"").file("f/x", b"").finish();
    let err = refused(layer);
    assert!(
        matches!(&err, ApplyError::NotADirectory { path, component, .. } if path == "f/x" && component == "/f"),
        "{err}"
    );
}

#[test]
fn hardlink_to_missing_target_is_refused() {
    let layer = Layer::new().hardlink("link", "missing").finish();
    let err = refused(layer);
    assert!(
        matches!(&err, ApplyError::HardlinkTarget { path, target, problem: "does not exist", .. }
            if path == "link" && target == "missing"),
        "{err}"
    );
}

#[test]
fn hardlink_to_directory_is_refused() {
    let layer = Layer::new().dir("d", 0o755).hardlink("link", "d").finish();
    let err = refused(layer);
    assert!(
        matches!(
            &err,
            ApplyError::HardlinkTarget {
                problem: "is a directory",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn hardlink_to_lower_layer_file_shares_the_inode() {
    let l1 = Layer::new().file("f", b"data").finish();
    let l2 = Layer::new().hardlink("g", "/f").finish();
    assert_tree(
        vec![l1, l2],
        r#"
        / dir 755 0:0
        /f file "data" 644 0:0 #0
        /g file "data" 644 0:0 #0
        "#,
    );
}

#[test]
fn conflicting_duplicate_in_one_layer_is_refused() {
    for layer in [
        Layer::new().file("f", b"one").file("f", b"two").finish(),
        // Same size, the bytes differ only in the first 64 KiB compared, or only in the last.
        Layer::new()
            .file("f", &vec![b'a'; 70_000])
            .file(
                "f",
                &[vec![b'a'; 100], vec![b'b'], vec![b'a'; 69_899]].concat(),
            )
            .finish(),
        Layer::new()
            .file("f", &vec![b'a'; 70_000])
            .file("f", &[vec![b'a'; 69_999], vec![b'b']].concat())
            .finish(),
        Layer::new()
            .file("f", b"same")
            .file_owned("f", b"same", 0o600, 0, 0)
            .finish(),
        Layer::new().dir("d", 0o755).file("d", b"").finish(),
        Layer::new().dir("d", 0o755).dir("d", 0o700).finish(),
        Layer::new().file("d/child", b"").file("d", b"").finish(),
    ] {
        let err = refused(layer);
        assert!(
            matches!(&err, ApplyError::Duplicate { path, layer } if (path == "f" || path == "d") && layer == "test-layer"),
            "{err}"
        );
    }
}

#[test]
fn exact_duplicates_are_allowed() {
    let layer = Layer::new()
        .dir("d", 0o755)
        .dir("d", 0o755)
        .file("d/f", b"x")
        .file("d/f", b"x")
        .hardlink("d/h", "d/f")
        .hardlink("d/h", "d/f")
        // Over 64 KiB: compared in several pieces.
        .file("d/big", &vec![b'a'; 70_000])
        .file("d/big", &vec![b'a'; 70_000])
        .finish();
    let (tree, _d, store) = build(vec![layer]);
    assert_eq!(dump(&tree, &store).len(), 5);
}

#[test]
fn unsupported_entry_type_is_refused() {
    let layer = Layer::new()
        .raw(tar::EntryType::new(b'V'), b"volume", b"", b"")
        .finish();
    let err = refused(layer);
    assert!(
        matches!(&err, ApplyError::EntryType { type_flag: 'V', path, .. } if path == "volume"),
        "{err}"
    );
}

#[test]
fn unknown_whiteout_kind_is_refused() {
    for name in [".wh..wh.plnk", ".wh."] {
        let layer = Layer::new().file(&format!("d/{name}"), b"").finish();
        let err = refused(layer);
        assert!(
            matches!(&err, ApplyError::Whiteout { path, .. } if path == &format!("d/{name}")),
            "{err}"
        );
    }
}

#[test]
fn empty_symlink_and_non_dir_root_are_refused() {
    let err = refused(
        Layer::new()
            .raw(tar::EntryType::Symlink, b"s", b"", b"")
            .finish(),
    );
    assert!(
        matches!(&err, ApplyError::EmptySymlink { path, .. } if path == "s"),
        "{err}"
    );
    let err = refused(
        Layer::new()
            .raw(tar::EntryType::Regular, b"/", b"", b"")
            .finish(),
    );
    assert!(matches!(&err, ApplyError::RootNotDirectory { .. }), "{err}");
}

#[test]
fn corrupt_header_names_the_previous_entry() {
    let mut layer = Layer::new()
        .file("first", b"1")
        .file("second", b"2")
        .finish();
    // Corrupt the checksum field of the second header (at byte 1024: header + one data block).
    layer[1024 + 148] ^= 0x01;
    let err = refused(layer);
    assert!(
        matches!(&err, ApplyError::Tar { after, .. } if after.contains("\"first\"")),
        "{err}"
    );
}

#[test]
fn truncated_data_names_the_entry() {
    let mut layer = Layer::new().file("big", &[7u8; 5000]).finish();
    layer.truncate(512 + 1000);
    let err = refused(layer);
    assert!(
        matches!(&err, ApplyError::Content { path, offset: 0, .. } if path == "big"),
        "{err}"
    );
}

#[test]
fn bad_numeric_field_is_refused() {
    let mut layer = Layer::new().file("f", b"").finish();
    // Overwrite the mode field (offset 100, 8 bytes) with non-octal text and fix the checksum.
    let mut h = tar::Header::from_byte_slice(&layer[..512]).clone();
    h.as_mut_bytes()[100..108].copy_from_slice(b"zzzzzzz\0");
    h.set_cksum();
    layer[..512].copy_from_slice(h.as_bytes());
    let err = refused(layer);
    assert!(
        matches!(&err, ApplyError::Header { field: "mode", path, .. } if path == "f"),
        "{err}"
    );
}

#[test]
fn insert_file_resolves_like_a_layer_entry() {
    let (_d, store) = store();
    let mut tree = Tree::new();
    apply(
        &mut tree,
        &store,
        Layer::new()
            .dir("usr/etc", 0o755)
            .symlink("etc", "/usr/etc")
            .file("old", b"")
            .finish(),
    )
    .unwrap();
    let leaf = |mode| Leaf {
        meta: Metadata {
            mode,
            ..Metadata::default()
        },
        kind: LeafKind::Symlink(b"t".to_vec()),
    };
    insert_file(&mut tree, b"/etc/conf", leaf(0o600)).unwrap();
    insert_file(&mut tree, b"new/parent/file", leaf(0o644)).unwrap();
    insert_file(&mut tree, b"old", leaf(0o640)).unwrap();
    assert_eq!(
        dump(&tree, &store),
        lines(
            r#"
            / dir 755 0:0
            /etc symlink -> /usr/etc 777 0:0
            /new/ dir 755 0:0
            /new/parent/ dir 755 0:0
            /new/parent/file symlink -> t 644 0:0
            /old symlink -> t 640 0:0
            /usr/ dir 755 0:0
            /usr/etc/ dir 755 0:0
            /usr/etc/conf symlink -> t 600 0:0
            "#
        )
    );
    let err = insert_file(&mut tree, b"../x", leaf(0o644)).unwrap_err();
    assert!(
        matches!(&err, ApplyError::PathEscapesRoot { layer, .. } if layer == "manifest extra files"),
        "{err}"
    );
    let err = insert_file(&mut tree, b"/", leaf(0o644)).unwrap_err();
    assert!(matches!(&err, ApplyError::RootNotDirectory { .. }), "{err}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Hostile input (STYLE 8): a valid layer with bytes overwritten and its end cut off is
    /// either applied or refused with an error; it never panics.
    #[test]
    fn damaged_layers_never_panic(
        edits in proptest::collection::vec((0usize..8192, proptest::prelude::any::<u8>()), 1..16),
        keep in 0usize..8192,
    ) {
        let mut layer = Layer::new()
            .dir("d", 0o755)
            .file_xattrs("d/f", b"data", &[("user.a", b"1")])
            .hardlink("d/h", "d/f")
            .symlink("s", "d")
            .file("s/through", b"t")
            .file("d/.wh.f", b"")
            .file("d/.wh..wh..opq", b"")
            .file(&"x/".repeat(80), b"long")
            .finish();
        for (pos, byte) in edits {
            let n = layer.len();
            layer[pos % n] = byte;
        }
        layer.truncate(keep);
        let (_d, store) = store();
        let mut tree = Tree::new();
        let _ = apply(&mut tree, &store, layer.clone());
        // A second layer on top of whatever the first left must not panic either.
        let _ = apply(&mut tree, &store, layer);
    }
}

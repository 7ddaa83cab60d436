//! `inputs::oci_layout` and `inputs::layer`: selecting and verifying an image in an OCI layout,
//! opening layers, and flattening a real layout, checked against `umoci unpack`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use builder::inputs::layer::{open_layer, LayerError};
use builder::inputs::oci_layout::{open_image, tar_blob, Compression, OciLayoutError};
use builder::tree::apply::{apply_layer, ApplyError};
use builder::tree::{Entry, LeafKind, Tree};
use measurements::Sha256Digest;
use serde_json::{json, Value};

use super::apply::{dump, store, Layer};
use crate::util::run;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

fn sha(data: &[u8]) -> Sha256Digest {
    Sha256Digest::of(data)
}

/// An OCI image layout in a temporary directory, written by hand from the image-spec
/// (`image-layout.md`, `manifest.md`, `config.md`).
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        fs_err::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.path().join("blobs/sha256").join(digest.to_hex())
    }

    /// Stores a blob; returns a descriptor for it.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let d = sha(bytes);
        fs_err::write(self.blob_path(&d), bytes).unwrap();
        json!({"mediaType": media_type, "digest": format!("sha256:{d}"), "size": bytes.len()})
    }

    /// Stores config + manifest for `layers` (uncompressed tar, stored blob, media type);
    /// returns the manifest descriptor.
    fn image(&self, layers: &[(Vec<u8>, Vec<u8>, &str)]) -> Value {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|(tar, _, _)| format!("sha256:{}", sha(tar)))
            .collect();
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = self.blob(
            "application/vnd.oci.image.config.v1+json",
            config.to_string().as_bytes(),
        );
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|(_, blob, mt)| self.blob(mt, blob))
            .collect();
        let manifest = json!({
            "schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": layer_descs,
        });
        self.blob(MANIFEST, manifest.to_string().as_bytes())
    }

    /// A layout holding one image of `layers`, listed in its index; returns the manifest
    /// descriptor too.
    fn with_image(layers: &[(Vec<u8>, Vec<u8>, &str)]) -> (Self, Value) {
        let layout = Layout::new();
        let m = layout.image(layers);
        layout.index(vec![m.clone()]);
        (layout, m)
    }

    /// Opens the image `m` names, expecting it to be refused.
    fn refused(&self, m: &Value) -> OciLayoutError {
        open_image(self.path(), &digest_of(m)).unwrap_err()
    }

    fn index(&self, manifests: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        fs_err::write(self.path().join("index.json"), index.to_string()).unwrap();
    }
}

fn digest_of(desc: &Value) -> Sha256Digest {
    desc["digest"].as_str().unwrap().parse().unwrap()
}

fn tagged(mut desc: Value, tag: &str) -> Value {
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    desc
}

fn with_platform(mut desc: Value, arch: &str) -> Value {
    desc["platform"] = json!({"architecture": arch, "os": "linux"});
    desc
}

fn simple_layers() -> Vec<(Vec<u8>, Vec<u8>, &'static str)> {
    let t1 = Layer::new().file("a", b"plain").finish();
    let t2 = Layer::new().file("b", b"gzip").finish();
    let t3 = Layer::new().file("c", b"zstd").finish();
    let t4 = Layer::new().file("d", b"docker").finish();
    vec![
        (t1.clone(), t1, TAR),
        (t2.clone(), gzip(&t2), GZIP),
        (t3.clone(), zstd(&t3), ZSTD),
        (t4.clone(), gzip(&t4), DOCKER_GZIP),
    ]
}

fn flatten(
    image: &builder::inputs::oci_layout::OciImage,
) -> (Tree, tempfile::TempDir, builder::content::ContentStore) {
    let (dir, store) = store();
    let mut tree = Tree::new();
    for blob in &image.layers {
        let mut reader = open_layer(blob).unwrap();
        let name = reader.name();
        apply_layer(&mut tree, &mut reader, &name, &store).unwrap();
    }
    (tree, dir, store)
}

#[test]
fn opens_a_directly_referenced_manifest() {
    let layout = Layout::new();
    let layers = simple_layers();
    let m = layout.image(&layers);
    layout.index(vec![tagged(m.clone(), "latest")]);
    let image = open_image(layout.path(), &digest_of(&m)).unwrap();
    assert_eq!(image.manifest_digest, digest_of(&m));
    assert_eq!(image.index_digest, None);
    assert_eq!(image.config.architecture().to_string(), "amd64");
    let got: Vec<(Sha256Digest, u64, &str, Compression)> = image
        .layers
        .iter()
        .map(|l| (l.digest, l.size, l.media_type.as_str(), l.compression))
        .collect();
    let want: Vec<(Sha256Digest, u64, &str, Compression)> = layers
        .iter()
        .zip([
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Gzip,
        ])
        .map(|((_, blob, mt), c)| (sha(blob), blob.len() as u64, *mt, c))
        .collect();
    assert_eq!(got, want);
    assert_eq!(image.layers[1].path, layout.blob_path(&sha(&layers[1].1)));
    let (tree, _d, store) = flatten(&image);
    assert_eq!(
        dump(&tree, &store),
        [
            "/ dir 755 0:0",
            "/a file \"plain\" 644 0:0",
            "/b file \"gzip\" 644 0:0",
            "/c file \"zstd\" 644 0:0",
            "/d file \"docker\" 644 0:0"
        ]
    );
}

#[test]
fn finds_a_manifest_through_a_nested_index_and_selects_amd64_from_a_pinned_index() {
    let layout = Layout::new();
    let amd64 = layout.image(&simple_layers()[..1]);
    let arm64 = layout.image(&simple_layers()[1..2]);
    let nested = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        with_platform(arm64, "arm64"), with_platform(amd64.clone(), "amd64"),
    ]});
    let nested = layout.blob(INDEX, nested.to_string().as_bytes());
    layout.index(vec![nested.clone()]);

    let image = open_image(layout.path(), &digest_of(&amd64)).unwrap();
    assert_eq!(
        (image.manifest_digest, image.index_digest),
        (digest_of(&amd64), None)
    );

    let image = open_image(layout.path(), &digest_of(&nested)).unwrap();
    assert_eq!(image.manifest_digest, digest_of(&amd64));
    assert_eq!(image.index_digest, Some(digest_of(&nested)));
}

#[test]
fn pinned_index_without_exactly_one_amd64_manifest_is_refused() {
    let layout = Layout::new();
    let arm64 = layout.image(&simple_layers()[..1]);
    let nested = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [with_platform(arm64, "arm64")]});
    let nested = layout.blob(INDEX, nested.to_string().as_bytes());
    layout.index(vec![nested.clone()]);
    let err = open_image(layout.path(), &digest_of(&nested)).unwrap_err();
    assert!(
        matches!(err, OciLayoutError::Platform { found: 0, .. }),
        "{err}"
    );
}

#[test]
fn unknown_manifest_digest_is_refused_listing_the_available_ones() {
    let (layout, m) = Layout::with_image(&simple_layers()[..1]);
    let wanted = sha(b"not there");
    let err = open_image(layout.path(), &wanted).unwrap_err();
    assert!(
        matches!(&err, OciLayoutError::ManifestNotFound { wanted: w, .. } if *w == wanted),
        "{err}"
    );
    assert!(err.to_string().contains(&digest_of(&m).to_hex()), "{err}");
}

#[test]
fn tampered_manifest_is_refused() {
    let (layout, m) = Layout::with_image(&simple_layers()[..1]);
    // Same length, different bytes: `"schemaVersion":2` -> `"schemaVersion":3`.
    edit_file(&layout.blob_path(&digest_of(&m)), |bytes| {
        let pos = bytes
            .windows(17)
            .position(|w| w == b"\"schemaVersion\":2")
            .unwrap();
        bytes[pos + 16] = b'3';
    });
    let err = layout.refused(&m);
    assert!(
        matches!(&err, OciLayoutError::BlobDigest { what, expected, .. } if what == "manifest" && *expected == digest_of(&m)),
        "{err}"
    );
}

#[test]
fn manifest_size_mismatch_is_refused() {
    let layout = Layout::new();
    let mut m = layout.image(&simple_layers()[..1]);
    m["size"] = json!(m["size"].as_u64().unwrap() + 1);
    layout.index(vec![m.clone()]);
    let err = layout.refused(&m);
    assert!(
        matches!(&err, OciLayoutError::BlobSize { what, .. } if what == "manifest"),
        "{err}"
    );
}

#[test]
fn tampered_config_is_refused() {
    let (layout, m) = Layout::with_image(&simple_layers()[..1]);
    let manifest: Value =
        serde_json::from_slice(&fs_err::read(layout.blob_path(&digest_of(&m))).unwrap()).unwrap();
    edit_file(
        &layout.blob_path(&digest_of(&manifest["config"])),
        |bytes| {
            *bytes = String::from_utf8_lossy(bytes)
                .replace("amd64", "arm64")
                .into_bytes();
        },
    );
    let err = layout.refused(&m);
    assert!(
        matches!(&err, OciLayoutError::BlobDigest { what, .. } if what == "image config"),
        "{err}"
    );
}

#[test]
fn unsupported_layer_media_types_are_refused_by_name() {
    for mt in [
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+bzip2",
    ] {
        let t = Layer::new().file("a", b"").finish();
        let (layout, m) = Layout::with_image(&[(t.clone(), gzip(&t), mt)]);
        let err = layout.refused(&m);
        assert!(
            matches!(&err, OciLayoutError::LayerMediaType { index: 0, media_type, .. } if media_type == mt),
            "{err}"
        );
        assert!(err.to_string().contains(mt), "{err}");
    }
}

#[test]
fn layer_of_wrong_size_is_refused_when_the_image_is_opened() {
    let layers = simple_layers();
    let (layout, m) = Layout::with_image(&layers[1..2]);
    edit_file(&layout.blob_path(&sha(&layers[1].1)), |bytes| bytes.push(0));
    let err = layout.refused(&m);
    assert!(
        matches!(&err, OciLayoutError::BlobSize { what, .. } if what == "layer 0"),
        "{err}"
    );
}

#[test]
fn bad_layout_version_is_refused() {
    let layout = Layout::new();
    fs_err::write(
        layout.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let err = open_image(layout.path(), &sha(b"")).unwrap_err();
    assert!(matches!(err, OciLayoutError::LayoutHeader { .. }), "{err}");
}

#[test]
fn wrong_layer_digest_is_reported_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer.tar");
    // Not a tar at all: if it were parsed first this would be a tar error, not a digest error.
    fs_err::write(&path, b"\x1f\x8bgarbage").unwrap();
    let blob = tar_blob(&path, &sha(b"something else")).unwrap();
    assert_eq!(blob.compression, Compression::Gzip);
    let err = open_layer(&blob).unwrap_err();
    assert!(
        matches!(&err, LayerError::Digest { found, .. } if *found == sha(b"\x1f\x8bgarbage")),
        "{err}"
    );
}

#[test]
fn plain_tar_compression_is_detected_from_magic_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let t = Layer::new().file("f", b"x").finish();
    for (name, bytes, want) in [
        ("t", t.clone(), Compression::None),
        ("g", gzip(&t), Compression::Gzip),
        ("z", zstd(&t), Compression::Zstd),
    ] {
        let path = dir.path().join(name);
        fs_err::write(&path, &bytes).unwrap();
        let blob = tar_blob(&path, &sha(&bytes)).unwrap();
        assert_eq!((blob.compression, blob.size), (want, bytes.len() as u64));
        let (_d, store) = store();
        let mut tree = Tree::new();
        apply_layer(&mut tree, &mut open_layer(&blob).unwrap(), name, &store).unwrap();
        assert_eq!(
            dump(&tree, &store),
            ["/ dir 755 0:0", "/f file \"x\" 644 0:0"]
        );
    }
}

/// Rewrites the file at `path` with `edit` applied to its bytes.
fn edit_file(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs_err::read(path).unwrap();
    edit(&mut bytes);
    fs_err::write(path, bytes).unwrap();
}

/// Incompressible bytes (a 64-bit LCG's high bytes), so compressed streams span many blocks.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

/// Applies a (pinned, so digest-correct) damaged blob and returns the error's full text.
fn apply_damaged(bytes: &[u8]) -> ApplyError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    fs_err::write(&path, bytes).unwrap();
    let blob = tar_blob(&path, &sha(bytes)).unwrap();
    let (_d, store) = store();
    let mut reader = open_layer(&blob).unwrap();
    let name = reader.name();
    apply_layer(&mut Tree::new(), &mut reader, &name, &store).unwrap_err()
}

/// Checks the error for a damaged blob: it names the blob's digest and `problem`, and is a
/// content error naming `entry` (when given) or else a content or tar error.
fn assert_damaged(case: &str, bytes: &[u8], entry: Option<&str>, problem: &str) {
    let err = apply_damaged(bytes);
    let msg = err.to_string();
    let kind_ok = match entry {
        Some(entry) => matches!(err, ApplyError::Content { ref path, .. } if path == entry),
        None => matches!(err, ApplyError::Content { .. } | ApplyError::Tar { .. }),
    };
    assert!(kind_ok, "{case}: {msg}");
    assert!(
        msg.contains(&sha(bytes).to_hex()) && msg.contains(problem),
        "{case}: {msg}"
    );
}

#[test]
fn corrupt_gzip_names_the_layer_and_the_entry() {
    let t = Layer::new()
        .file("first", &[1u8; 3000])
        .file("second", &vec![2u8; 300_000])
        .finish();
    let mut g = gzip(&t);
    let n = g.len();
    g[n - 40] ^= 0xff; // inside the deflate stream, near its end
    assert_damaged("corrupt gzip", &g, None, "gzip data is corrupt");
}

/// A layer cut in half inside its second, incompressible entry.
fn truncated(compress: fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let t = Layer::new()
        .file("first", &[1u8; 3000])
        .file("second", &noise(600_000))
        .finish();
    let mut blob = compress(&t);
    blob.truncate(blob.len() / 2);
    blob
}

#[test]
fn truncated_zstd_names_the_layer() {
    let cut = truncated(zstd);
    assert_damaged(
        "truncated zstd",
        &cut,
        Some("second"),
        "zstd data is corrupt",
    );
}

#[test]
fn truncated_gzip_names_the_layer() {
    let cut = truncated(gzip);
    assert_damaged(
        "truncated gzip",
        &cut,
        Some("second"),
        "gzip data is corrupt",
    );
}

/// Two layers exercising every rule umoci implements: whiteouts, an opaque directory,
/// replacement both ways, a path through a symlink, hard links, xattrs, devices, setuid/sticky.
fn rich_layers() -> (Vec<u8>, Vec<u8>) {
    let l1 = Layer::new()
        .dir("etc", 0o755)
        .file("etc/conf", b"c1")
        .file("etc/remove-me", b"r")
        .dir("etc/gone-dir", 0o755)
        .file("etc/gone-dir/f", b"f")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .dir("usr/lib", 0o755)
        .file_owned("usr/bin/tool", b"tool", 0o4755, 1000, 1000)
        .hardlink("usr/bin/tool-link", "usr/bin/tool")
        .symlink("lib", "usr/lib")
        .symlink("abs", "/etc/conf")
        .file_xattrs(
            "x",
            b"xattrs",
            &[("user.test", b"hello"), ("user.bin", b"\x00\xff")],
        )
        .dir("opaque", 0o755)
        .file("opaque/a", b"a")
        .dir("opaque/sub", 0o755)
        .file("opaque/sub/b", b"b")
        .dir("d2f", 0o755)
        .file("d2f/child", b"c")
        .file("f2d", b"f")
        .dir("dev", 0o755)
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/loop9", tar::EntryType::Block, 7, 9)
        .device("dev/fifo", tar::EntryType::Fifo, 0, 0)
        .dir_owned("sticky", 0o1777, 2, 3)
        .finish();
    let l2 = Layer::new()
        .file("etc/.wh.remove-me", b"")
        .file("etc/.wh.gone-dir", b"")
        .dir("opaque", 0o700)
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/new", b"n")
        .file("d2f", b"now a file")
        .dir("f2d", 0o700)
        .file("lib/newfile", b"through the symlink")
        .file_owned("etc/conf", b"c2", 0o600, 5, 6)
        .file("new1", b"pair")
        .hardlink("new2", "new1")
        .dir_owned("usr", 0o750, 0, 10)
        .file_xattrs("y", b"y", &[("user.other", b"1")])
        .finish();
    (l1, l2)
}

/// Renumbers the `#N` hard-link marks by first appearance so two dumps compare.
fn renumber(lines: Vec<String>) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    lines
        .into_iter()
        .map(|l| match l.rsplit_once(" #") {
            Some((head, mark)) => {
                let n = seen.len();
                let k = *seen.entry(mark.to_owned()).or_insert(n);
                format!("{head} #{k}")
            }
            None => l,
        })
        .collect()
}

/// Dumps a directory on disk in the format of `apply::dump` (xattrs read with getfattr).
fn dump_disk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    dump_disk_dir(root, "", &mut out);
    out
}

fn disk_meta(path: &Path, md: &std::fs::Metadata) -> String {
    let mut s = format!("{:o} {}:{}", md.mode() & 0o7777, md.uid(), md.gid());
    let got = Command::new("getfattr")
        .args(["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "getfattr: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    for line in String::from_utf8(got.stdout).unwrap().lines() {
        if let Some((k, v)) = line.split_once("=0x") {
            let v = hex::decode(v).unwrap();
            s.push_str(&format!(" {k}={}", String::from_utf8_lossy(&v)));
        }
    }
    s
}

fn dump_disk_dir(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let md = fs_err::symlink_metadata(dir).unwrap();
    out.push(format!("{prefix}/ dir {}", disk_meta(dir, &md)));
    let mut names: Vec<_> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let shown = format!("{prefix}/{}", name.to_string_lossy());
        let md = fs_err::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let payload = if ft.is_dir() {
            dump_disk_dir(&path, &shown, out);
            continue;
        } else if ft.is_file() {
            format!("file {:?}", fs_err::read_to_string(&path).unwrap())
        } else if ft.is_symlink() {
            format!("symlink -> {}", fs_err::read_link(&path).unwrap().display())
        } else if ft.is_char_device() {
            format!("chr {:#x}", md.rdev())
        } else if ft.is_block_device() {
            format!("blk {:#x}", md.rdev())
        } else if ft.is_fifo() {
            "fifo".to_owned()
        } else {
            "socket".to_owned()
        };
        let mut line = format!("{shown} {payload} {}", disk_meta(&path, &md));
        if md.nlink() > 1 {
            line.push_str(&format!(" #{}", md.ino()));
        }
        out.push(line);
    }
}

/// Writes the two rich layers as an image (`latest`) with the given layer encodings.
fn rich_image(layout: &Layout, second: &'static str) -> Value {
    let (l1, l2) = rich_layers();
    let b2 = if second == ZSTD { zstd(&l2) } else { gzip(&l2) };
    let m = layout.image(&[(l1.clone(), gzip(&l1), GZIP), (l2, b2, second)]);
    layout.index(vec![tagged(m.clone(), "latest")]);
    m
}

fn umoci_unpack(layout: &Path, bundle: &Path) {
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ours(layout: &Layout, m: &Value) -> Vec<String> {
    let image = open_image(layout.path(), &digest_of(m)).unwrap();
    let (tree, _d, store) = flatten(&image);
    renumber(dump(&tree, &store))
}

#[test]
fn flattening_matches_umoci_unpack() {
    let layout = Layout::new();
    let m = rich_image(&layout, GZIP);
    let bundle = tempfile::tempdir().unwrap();
    umoci_unpack(layout.path(), &bundle.path().join("b"));
    let theirs = renumber(dump_disk(&bundle.path().join("b/rootfs")));
    assert_eq!(ours(&layout, &m), theirs);
}

/// umoci 0.4.7 refuses `tar+zstd` layers ("blob is not correct mediatype"), so the zstd
/// image is first re-encoded by skopeo (containers/image's own zstd decoder) into a gzip-only
/// layout, which umoci then unpacks; our flattening reads the zstd layout directly.
#[test]
fn zstd_flattening_matches_skopeo_then_umoci() {
    let layout = Layout::new();
    let m = rich_image(&layout, ZSTD);
    let work = tempfile::tempdir().unwrap();
    let gz = work.path().join("gz");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-compress-format", "gzip"])
        .arg(format!("oci:{}:latest", layout.path().display()))
        .arg(format!("oci:{}:latest", gz.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: Value =
        serde_json::from_str(&fs_err::read_to_string(gz.join("index.json")).unwrap()).unwrap();
    let manifest_hex = digest_of(&index["manifests"][0]).to_hex();
    let manifest = fs_err::read_to_string(gz.join("blobs/sha256").join(manifest_hex)).unwrap();
    assert_eq!(
        manifest.matches("tar+gzip").count(),
        2,
        "skopeo did not re-encode to gzip: {manifest}"
    );
    umoci_unpack(&gz, &work.path().join("b"));
    let theirs = renumber(dump_disk(&work.path().join("b/rootfs")));
    assert_eq!(ours(&layout, &m), theirs);
}

/// A tree on disk with the entry kinds GNU tar archives: owners, setuid/setgid, xattrs,
/// a 300-byte path, hard links, a symlink, a fifo, and for `sparse` a sparse file (no xattrs).
fn disk_tree(root: &Path, sparse: bool) {
    let d = root.join("d");
    fs_err::create_dir_all(&d).unwrap();
    fs_err::write(d.join("file"), "content").unwrap();
    if !sparse {
        // GNU tar stores xattrs only in PAX records, and PAX switches it to the PAX sparse format.
        run(Command::new("setfattr")
            .args(["-n", "user.k", "-v", "v"])
            .arg(d.join("file")));
    }
    fs_err::hard_link(d.join("file"), d.join("file-link")).unwrap();
    std::os::unix::fs::symlink("../nowhere", d.join("sym")).unwrap();
    run(Command::new("mkfifo").arg(d.join("fifo")));
    let long = d.join("l".repeat(120)).join("m".repeat(120));
    fs_err::create_dir_all(&long).unwrap();
    fs_err::write(long.join("n".repeat(60)), "deep").unwrap();
    fs_err::write(d.join("suid"), "s").unwrap();
    if sparse {
        let f = fs_err::File::create(d.join("sparse")).unwrap();
        f.set_len(1 << 16).unwrap();
        std::os::unix::fs::FileExt::write_at(f.file(), b"end", (1 << 16) - 3).unwrap();
    }
    run(Command::new("chown")
        .args(["-h", "1234:5678"])
        .arg(d.join("sym")));
    run(Command::new("chown").args(["1234:5678"]).arg(&d));
    run(Command::new("chmod").args(["2750"]).arg(&d));
    run(Command::new("chmod").args(["4711"]).arg(d.join("suid")));
}

/// GNU tar writes the archives (PAX with xattrs; GNU format with old-style sparse files);
/// applying them must reproduce the tree they were made from.
#[test]
fn gnu_tar_archives_reproduce_their_source_tree() {
    for (format, sparse) in [("pax", false), ("gnu", true)] {
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("src");
        disk_tree(&src, sparse);
        let archive = work.path().join("a.tar");
        let mut cmd = Command::new("tar");
        cmd.arg(format!("--format={format}")).arg("--numeric-owner");
        if sparse {
            cmd.arg("--sparse");
        } else {
            cmd.args(["--xattrs", "--xattrs-include=*"]);
        }
        cmd.arg("-C").arg(&src).arg("-cf").arg(&archive);
        run(cmd.arg("d"));
        let bytes = fs_err::read(&archive).unwrap();
        if sparse {
            // The GNU `S` type flag must really be there, or this case tests nothing.
            assert!(bytes
                .chunks(512)
                .any(|h| h.starts_with(b"d/sparse\0") && h[156] == b'S'));
        }
        let (_d, store) = store();
        let mut tree = Tree::new();
        apply_layer(&mut tree, &mut bytes.as_slice(), format, &store).unwrap();
        let mut want = renumber(dump_disk(&src));
        // GNU tar does not archive the source root itself; ours is the default root.
        want[0] = "/ dir 755 0:0".to_owned();
        assert_eq!(renumber(dump(&tree, &store)), want, "{format}");
    }
}

/// GNU tar's PAX sparse format (`GNU.sparse.*` records) is refused, not mis-extracted.
#[test]
fn pax_sparse_files_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    disk_tree(&src, true);
    let archive = work.path().join("a.tar");
    run(Command::new("tar")
        .args(["--format=pax", "--sparse", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&archive)
        .arg("d/sparse"));
    let bytes = fs_err::read(&archive).unwrap();
    let (_d, store) = store();
    let err = apply_layer(
        &mut Tree::new(),
        &mut bytes.as_slice(),
        "pax-sparse",
        &store,
    )
    .unwrap_err();
    assert!(matches!(&err, ApplyError::PaxSparse { .. }), "{err}");
}

#[test]
fn apply_checked_reads_once_and_refuses_a_wrong_digest_at_the_end() {
    use builder::inputs::layer::{apply_checked, CheckedError};
    let dir = tempfile::tempdir().unwrap();
    let t = Layer::new().file("f", b"x").finish();
    let g = gzip(&t);
    let path = dir.path().join("layer");
    fs_err::write(&path, &g).unwrap();
    let (_d, store) = store();
    // The pinned blob applies.
    let blob = tar_blob(&path, &sha(&g)).unwrap();
    let mut tree = Tree::new();
    apply_checked(&blob, |r| apply_layer(&mut tree, r, "l", &store)).unwrap();
    assert_eq!(
        dump(&tree, &store),
        ["/ dir 755 0:0", "/f file \"x\" 644 0:0"]
    );
    // A valid layer that is not the pinned one: applied, then refused by digest.
    let blob = tar_blob(&path, &sha(b"the pinned bytes")).unwrap();
    let err = apply_checked(&blob, |r| apply_layer(&mut Tree::new(), r, "l", &store)).unwrap_err();
    assert!(
        matches!(&err, CheckedError::Layer(LayerError::Digest { found, .. }) if *found == sha(&g)),
        "{err}"
    );
    // Garbage that fails to parse: the digest error wins over the parse error.
    fs_err::write(&path, b"\x1f\x8bgarbage").unwrap();
    let blob = tar_blob(&path, &sha(b"something else")).unwrap();
    let err = apply_checked(&blob, |r| apply_layer(&mut Tree::new(), r, "l", &store)).unwrap_err();
    assert!(
        matches!(&err, CheckedError::Layer(LayerError::Digest { found, .. }) if *found == sha(b"\x1f\x8bgarbage")),
        "{err}"
    );
    // Pinned but corrupt: the parse error is reported.
    let blob = tar_blob(&path, &sha(b"\x1f\x8bgarbage")).unwrap();
    let err = apply_checked(&blob, |r| apply_layer(&mut Tree::new(), r, "l", &store)).unwrap_err();
    assert!(matches!(&err, CheckedError::Apply(_)), "{err}");
}

/// Applies `blob` (a layer whose last file is `z`, "end") read once by `apply_checked` and
/// checked first by `open_layer` (then read on this thread): both give the same tree, with
/// `z` whole at the end.
fn read_once_equals_checked_first(
    blob: &builder::inputs::oci_layout::LayerBlob,
    store: &builder::content::ContentStore,
) -> Tree {
    use builder::inputs::layer::apply_checked;
    let mut read_once = Tree::new();
    apply_checked(blob, |r| apply_layer(&mut read_once, r, "l", store)).unwrap();
    let mut checked_first = Tree::new();
    apply_layer(
        &mut checked_first,
        &mut open_layer(blob).unwrap(),
        "l",
        store,
    )
    .unwrap();
    let dumped = dump(&read_once, store);
    assert!(
        dumped.contains(&"/z file \"end\" 644 0:0".to_owned()),
        "{dumped:?}"
    );
    assert_eq!(dumped, dump(&checked_first, store));
    read_once
}

/// A gzip layer is decompressed and hashed for its diff_id on a thread of its own: a stream
/// of many chunks (more than the 16 in flight) comes out whole and in order, the diff_id it
/// hashes is the sha256 of the tar stream (the test's own), and a config that names another
/// diff_id is refused with the stream's real one.
#[test]
fn apply_checked_inflates_a_gzip_layer_of_many_chunks_and_checks_its_diff_id() {
    use builder::content::ContentSource as _;
    use builder::inputs::layer::{apply_checked, CheckedError};
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    // 4 MB of pseudo-random letters (the dump shows contents as text) spans about 30
    // decompressed chunks of 128 KiB.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..4_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect();
    let t = Layer::new().file("big", &big).file("z", b"end").finish();
    let g = gzip(&t);
    let path = dir.path().join("layer");
    fs_err::write(&path, &g).unwrap();
    let (_d, store) = store();
    let mut blob = tar_blob(&path, &sha(&g)).unwrap();
    blob.diff_id = Some(sha(&t));
    let tree = read_once_equals_checked_first(&blob, &store);
    let Some(Entry::Leaf(id)) = tree.root.entries.get(&b"big"[..]) else {
        panic!("no file `big` in the layer's tree");
    };
    let LeafKind::Regular(content) = &tree.leaf(*id).kind else {
        panic!("`big` is not a regular file");
    };
    let stored = store
        .open(content)
        .map(|mut r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        })
        .unwrap();
    assert!(
        stored == big,
        "the big file's bytes differ after the round trip"
    );
    // The config names another diff_id: refused, naming the stream's real one.
    blob.diff_id = Some(sha(b"another tar stream"));
    let err = apply_checked(&blob, |r| apply_layer(&mut Tree::new(), r, "l", &store)).unwrap_err();
    assert!(
        matches!(&err, CheckedError::Layer(LayerError::DiffId { found, .. }) if *found == sha(&t)),
        "{err}"
    );
}

#[test]
fn apply_checked_streams_a_plain_layer_of_many_chunks_and_refuses_a_file_that_grew() {
    use builder::inputs::layer::{apply_checked, CheckedError};
    let dir = tempfile::tempdir().unwrap();
    // 3 MB spans many of the reading thread's chunks; the small file after it must come out
    // whole and in order.
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| b'a' + (i * 7 % 26) as u8)
        .collect();
    let t = Layer::new().file("big", &big).file("z", b"end").finish();
    let path = dir.path().join("layer");
    fs_err::write(&path, &t).unwrap();
    let (_d, store) = store();
    let blob = tar_blob(&path, &sha(&t)).unwrap();
    read_once_equals_checked_first(&blob, &store);
    // The file grew after it was sized for its pin: nothing past the pinned size is applied
    // (the tar is whole without it), and the build is refused by size.
    fs_err::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"appended")
        .unwrap();
    let err = apply_checked(&blob, |r| apply_layer(&mut Tree::new(), r, "l", &store)).unwrap_err();
    assert!(
        matches!(&err, CheckedError::Layer(LayerError::Size { expected, found, .. })
            if *expected == t.len() as u64 && *found == t.len() as u64 + 8),
        "{err}"
    );
}

/// An uncompressed layer is read by the parser's thread and hashed on another. One that fails
/// to parse at its first header is still hashed whole (the hashing thread reads the rest
/// itself), so a blob that is not the pinned one is named as such, with the whole file's
/// digest; pinned as it is, the parse error is reported; a file shorter than its pin is
/// refused by size.
#[test]
fn apply_checked_hashes_all_of_a_plain_layer_that_fails_to_parse_early() {
    use builder::inputs::layer::{apply_checked, CheckedError};
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| b'a' + (i * 11 % 26) as u8)
        .collect();
    let good = Layer::new().file("big", &big).file("z", b"end").finish();
    let mut bad = good.clone();
    // The first header's checksum field (ustar: bytes 148..156): the parser stops there, in
    // the first of about 23 chunks.
    bad[150] ^= 0x07;
    let path = dir.path().join("layer");
    fs_err::write(&path, &bad).unwrap();
    let (_d, store) = store();
    let blob = tar_blob(&path, &sha(&good)).unwrap();
    let err = apply_checked(&blob, |r| apply_layer(&mut Tree::new(), r, "l", &store)).unwrap_err();
    assert!(
        matches!(&err, CheckedError::Layer(LayerError::Digest { found, .. }) if *found == sha(&bad)),
        "{err}"
    );
    let blob = tar_blob(&path, &sha(&bad)).unwrap();
    let err = apply_checked(&blob, |r| apply_layer(&mut Tree::new(), r, "l", &store)).unwrap_err();
    assert!(matches!(&err, CheckedError::Apply(_)), "{err}");
    // Sized and pinned whole, then cut short.
    fs_err::write(&path, &good).unwrap();
    let blob = tar_blob(&path, &sha(&good)).unwrap();
    fs_err::write(&path, &good[..2_000_000]).unwrap();
    let err = apply_checked(&blob, |r| apply_layer(&mut Tree::new(), r, "l", &store)).unwrap_err();
    assert!(
        matches!(&err, CheckedError::Layer(LayerError::Size { expected, found, .. })
            if *expected == good.len() as u64 && *found == 2_000_000),
        "{err}"
    );
}

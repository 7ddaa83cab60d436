//! Each bad input is refused with exit code 3 and a message that names the input and the fix,
//! and leaves no output directory (finished-looking or partial) behind.

use std::path::{Path, PathBuf};

use measurements::Sha256Digest;
use reproducibility_tests::{write_layout, Compression, Entry, Kind, Layer};
use serde_json::json;

use crate::util::{assert_refused, build_quiet};

/// A scratch project: a manifest plus its inputs in one temporary directory.
struct Case {
    dir: tempfile::TempDir,
    layers: Vec<String>,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("vmlinuz"), b"not really a kernel").unwrap();
        fs_err::write(dir.path().join("fw.fd"), b"not really firmware").unwrap();
        Case {
            dir,
            layers: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds an OCI layout layer source (pinned to its manifest digest).
    fn oci(
        &mut self,
        name: &str,
        layers: &[(Vec<u8>, Compression)],
    ) -> reproducibility_tests::Layout {
        let l = write_layout(&self.path().join(name), layers, json!({}), "t").unwrap();
        self.layers.push(format!(
            "[[rootfs.layers]]\noci = \"{name}\"\nmanifest = \"sha256:{}\"\n",
            l.manifest
        ));
        l
    }

    /// Adds a tar layer source with the given pin line (or none).
    fn tar(&mut self, name: &str, bytes: &[u8], pin: Option<String>) {
        fs_err::write(self.path().join(name), bytes).unwrap();
        let pin = pin
            .map(|p| format!("sha256 = \"{p}\"\n"))
            .unwrap_or_default();
        self.layers
            .push(format!("[[rootfs.layers]]\ntar = \"{name}\"\n{pin}"));
    }

    /// Writes the manifest and runs the build; returns (exit code, stderr, out dir).
    fn build(&self) -> (i32, String, PathBuf) {
        let manifest = self.manifest();
        let out = self.path().join("out");
        let o = build_quiet(&manifest, &out);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            out,
        )
    }

    /// Writes the manifest (`m.toml`).
    fn manifest(&self) -> PathBuf {
        let k = Sha256Digest::of(b"not really a kernel");
        let f = Sha256Digest::of(b"not really firmware");
        let text = format!(
            "schema = 1\n[image]\nname = \"t\"\nversion = \"1\"\nsource_date_epoch = 0\n{}\n[boot]\nkernel = {{ path = \"vmlinuz\", sha256 = \"{k}\" }}\nfirmware = {{ path = \"fw.fd\", sha256 = \"{f}\" }}\n",
            if self.layers.is_empty() { "[rootfs]\nlayers = []\n".to_owned() } else { self.layers.concat() }
        );
        let manifest = self.path().join("m.toml");
        fs_err::write(&manifest, text).unwrap();
        manifest
    }

    /// Builds, expecting refusal; checks exit code 3, that nothing was left behind, and that
    /// stderr mentions every one of `needles`.
    fn refused(&self, needles: &[&str]) -> String {
        let manifest = self.manifest();
        let out = self.path().join("out");
        assert_refused(&build_quiet(&manifest, &out), &out, self.path(), needles)
    }
}

fn simple_tar() -> Vec<u8> {
    Layer::new()
        .dir("etc", 0o755)
        .file("etc/a", 0o644, b"a\n")
        .finish()
}

#[test]
fn missing_pin_prints_the_digest_to_pin() {
    let mut c = Case::new();
    let t = simple_tar();
    c.tar("l.tar", &t, None);
    let d = Sha256Digest::of(&t).to_hex();
    c.refused(&["l.tar", "no sha256 pin", &d, "rootfs.layers[0]"]);
}

#[test]
fn wrong_digest_prints_both_digests() {
    let mut c = Case::new();
    let t = simple_tar();
    let wrong = Sha256Digest::of(b"something else").to_hex();
    c.tar("l.tar", &t, Some(wrong.clone()));
    // The pin is checked as the layer is applied; the refusal still names the manifest field.
    c.refused(&[
        "rootfs.layers[0] (l.tar): sha256 mismatch",
        &wrong,
        &Sha256Digest::of(&t).to_hex(),
    ]);
}

#[test]
fn truncated_blob_is_named() {
    let mut c = Case::new();
    let l = c.oci("img", &[(simple_tar(), Compression::Gzip)]);
    let blob = c.path().join("img/blobs/sha256").join(l.layers[0].to_hex());
    let bytes = fs_err::read(&blob).unwrap();
    fs_err::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    c.refused(&[&l.layers[0].to_hex()[..12]]);
}

#[test]
fn corrupt_compressed_stream_is_named() {
    // The pin matches the corrupt bytes: the digest is right, the gzip stream is not.
    let mut c = Case::new();
    let mut gz = Compression::Gzip.compress(&simple_tar()).unwrap();
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    gz[mid + 1] ^= 0xff;
    let pin = Sha256Digest::of(&gz).to_hex();
    c.tar("l.tar.gz", &gz, Some(pin.clone()));
    c.refused(&[&pin[..12]]);
}

#[test]
fn dotdot_above_root_is_refused() {
    let mut c = Case::new();
    let t = Layer::new().file("../../etc/evil", 0o644, b"x").finish();
    let d = Sha256Digest::of(&t);
    c.tar("l.tar", &t, Some(d.to_hex()));
    let err = c.refused(&["../../etc/evil", &format!("layer sha256:{d}")]);
    // The layer is named once, without doubled words.
    assert_eq!(err.matches(&d.to_hex()).count(), 1, "{err}");
    assert!(
        !err.contains("layer layer") && !err.contains("sha256:sha256:"),
        "{err}"
    );
}

#[test]
fn path_through_an_earlier_symlink_that_leaves_the_root_is_refused() {
    let mut c = Case::new();
    let lower = Layer::new().symlink("escape", "../../../../tmp").finish();
    let upper = Layer::new().file("escape/owned", 0o644, b"x").finish();
    c.oci(
        "img",
        &[(lower, Compression::Gzip), (upper, Compression::None)],
    );
    c.refused(&["escape"]);
}

#[test]
fn hardlink_to_missing_target_is_refused() {
    let mut c = Case::new();
    let t = Layer::new().hardlink("etc/link", "etc/nowhere").finish();
    c.tar("l.tar", &t, Some(Sha256Digest::of(&t).to_hex()));
    c.refused(&["etc/link", "etc/nowhere"]);
}

/// Layers are read and parsed at once, but refused as if applied one after another: an
/// earlier layer's error for what it does to the tree comes before a later layer that is not
/// its pin; within a layer, an entry's error comes before a broken header after it.
#[test]
fn layers_parsed_at_once_are_refused_in_order() {
    let mut c = Case::new();
    let first = Layer::new().hardlink("etc/link", "etc/nowhere").finish();
    c.tar("first.tar", &first, Some(Sha256Digest::of(&first).to_hex()));
    let wrong = Sha256Digest::of(b"something else").to_hex();
    c.tar("second.tar", &simple_tar(), Some(wrong.clone()));
    let err = c.refused(&["etc/link", "etc/nowhere"]);
    assert!(
        !err.contains(&wrong),
        "the later layer's error came first: {err}"
    );
    c.layers.remove(0);
    c.refused(&["rootfs.layers[0] (second.tar): sha256 mismatch", &wrong]);

    let mut c = Case::new();
    let mut broken = Layer::new()
        .hardlink("etc/link", "etc/nowhere")
        .file("etc/a", 0o644, b"a\n")
        .finish();
    // The second entry's header: its checksum no longer matches.
    let at = broken.windows(6).position(|w| w == b"etc/a\0").unwrap();
    assert_eq!(at % 512, 0, "a header starts with its name");
    broken[at + 148..at + 156].copy_from_slice(b"0000000\0");
    c.tar(
        "broken.tar",
        &broken,
        Some(Sha256Digest::of(&broken).to_hex()),
    );
    let err = c.refused(&["etc/link", "etc/nowhere"]);
    assert!(!err.contains("cannot read the tar stream"), "{err}");
    // The broken header alone is refused as such.
    let mut alone = simple_tar();
    let at = alone.windows(6).position(|w| w == b"etc/a\0").unwrap();
    alone[at + 148..at + 156].copy_from_slice(b"0000000\0");
    let mut c = Case::new();
    c.tar("alone.tar", &alone, Some(Sha256Digest::of(&alone).to_hex()));
    let err = c.refused(&["cannot read the tar stream", "after entry \"etc\""]);
    assert_eq!(
        err.matches("checksum mismatch").count(),
        1,
        "said once: {err}"
    );
}

#[test]
fn conflicting_duplicates_in_one_layer_are_refused() {
    let mut c = Case::new();
    let t = Layer::new()
        .file("etc/x", 0o644, b"one")
        .push(&Entry {
            mode: 0o644,
            data: b"two",
            ..Entry::new(Kind::File, "etc/x")
        })
        .finish();
    c.tar("l.tar", &t, Some(Sha256Digest::of(&t).to_hex()));
    c.refused(&["etc/x"]);
}

#[test]
fn unknown_media_type_is_refused() {
    let mut c = Case::new();
    let l = c.oci("img", &[(simple_tar(), Compression::None)]);
    // Rewrite the manifest with an unknown layer media type (and re-pin it).
    let blobs = c.path().join("img/blobs/sha256");
    let mpath = blobs.join(l.manifest.to_hex());
    let text = fs_err::read_to_string(&mpath).unwrap().replace(
        "application/vnd.oci.image.layer.v1.tar\"",
        "application/vnd.example.unknown\"",
    );
    let d = Sha256Digest::of(text.as_bytes());
    fs_err::write(blobs.join(d.to_hex()), &text).unwrap();
    let index = fs_err::read_to_string(c.path().join("img/index.json"))
        .unwrap()
        .replace(&l.manifest.to_hex(), &d.to_hex())
        .replace(
            &format!("\"size\":{}", fs_err::metadata(&mpath).unwrap().len()),
            &format!("\"size\":{}", text.len()),
        );
    fs_err::write(c.path().join("img/index.json"), index).unwrap();
    c.layers[0] = format!("[[rootfs.layers]]\noci = \"img\"\nmanifest = \"sha256:{d}\"\n");
    c.refused(&["application/vnd.example.unknown"]);
}

#[test]
fn missing_file_names_the_path_and_field() {
    let mut c = Case::new();
    c.layers
        .push("[[rootfs.layers]]\ntar = \"does-not-exist.tar\"\nsha256 = \"00\"\n".into());
    // A malformed pin is a manifest error.
    c.refused(&["sha256"]);
    c.layers[0] = format!(
        "[[rootfs.layers]]\ntar = \"does-not-exist.tar\"\nsha256 = \"{}\"\n",
        Sha256Digest::of(b"").to_hex()
    );
    c.refused(&["does-not-exist.tar", "rootfs.layers[0]"]);
}

/// Builds killed with SIGKILL leave their hidden partial directories; the next build removes
/// those (nobody holds their locks any more), and a successful build leaves none. A build
/// killed after renaming its output into place (between that rename and its exit) leaves
/// that output whole.
#[test]
fn builds_killed_with_sigkill_leave_nothing_after_the_next_build() {
    let mut c = Case::new();
    // 48 MiB in 3 files (incompressible enough to take the debug binary a while).
    let chunk: Vec<u8> = (0u32..4 << 20)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let mut l = Layer::new();
    l.dir("data", 0o755);
    for n in 0..3 {
        let mut bytes = chunk.clone();
        bytes[0] = n;
        l.file(&format!("data/f{n}"), 0o644, &bytes);
    }
    let t = l.finish();
    c.tar("big.tar", &t, Some(Sha256Digest::of(&t).to_hex()));
    let manifest = c.manifest();
    let out = c.path().join("out");
    // The names in a directory, sorted.
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    // What a whole output holds, from a build nobody killed (then moved out of the way).
    let (code, err, built) = c.build();
    assert_eq!(code, 0, "{err}");
    let whole = names(&built);
    assert!(whole.contains(&"record.json".to_owned()), "{whole:?}");
    fs_err::remove_dir_all(&built).unwrap();
    let partials = || -> Vec<String> {
        names(c.path())
            .into_iter()
            .filter(|n| n.starts_with(".out.partial-"))
            .collect()
    };
    let mut left_max = 0;
    for i in 0..10u64 {
        let mut child = std::process::Command::new(crate::util::builder_bin())
            .arg("build")
            .arg(&manifest)
            .arg("--out")
            .arg(&out)
            .arg("--quiet")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5 + 25 * i));
        // SIGKILL: no destructor, no cleanup runs.
        child.kill().unwrap();
        let finished = child.wait().unwrap().success();
        if out.exists() {
            // Finished, or killed after the rename: a whole output, moved out of the way.
            assert_eq!(
                names(&out),
                whole,
                "a build (finished: {finished}) left an incomplete {out:?}"
            );
            fs_err::remove_dir_all(&out).unwrap();
        } else {
            assert!(!finished, "a build exited 0 without its output");
        }
        left_max = left_max.max(partials().len());
    }
    // Without this the test could pass without ever killing a build mid-way.
    assert!(
        left_max > 0,
        "no killed build left a partial directory: kill earlier"
    );
    let (code, err, out) = c.build();
    assert_eq!(code, 0, "{err}");
    assert!(out.join("record.json").is_file());
    assert_eq!(
        partials(),
        Vec::<String>::new(),
        "partial directories remain"
    );
}

/// A name EROFS cannot hold (256 bytes) is refused at input with exit 3, not by the writer.
#[test]
fn a_256_byte_name_is_refused_at_input() {
    let mut c = Case::new();
    let long = format!("etc/{}", "n".repeat(256));
    let t = Layer::new()
        .dir("etc", 0o755)
        .file(&long, 0o644, b"x")
        .finish();
    c.tar("l.tar", &t, Some(Sha256Digest::of(&t).to_hex()));
    c.refused(&["256-byte name", "at most 255 bytes", "layer sha256:"]);
}

/// A NUL in a symlink target (a PAX `linkpath`) is refused at input with exit 3.
#[test]
fn a_nul_in_a_symlink_target_is_refused_at_input() {
    let mut c = Case::new();
    let target = format!("{}\0x", "t".repeat(101));
    let t = Layer::new()
        .dir("etc", 0o755)
        .push(&Entry {
            link: target.as_bytes(),
            ..Entry::new(Kind::Symlink, "etc/link")
        })
        .finish();
    c.tar("l.tar", &t, Some(Sha256Digest::of(&t).to_hex()));
    c.refused(&["etc/link", "NUL byte in its target"]);
}

/// An image config whose `rootfs.diff_ids` do not match its layers (uncompressed) is refused
/// while the layer is decompressed: exit 3, both digests named, nothing left.
#[test]
fn mismatching_diff_ids_are_refused() {
    // An uncompressed layer's diff_id is its checked digest (the build does not hash it
    // twice): a config that says otherwise is refused all the same.
    for compression in [Compression::Gzip, Compression::None] {
        mismatching_diff_id_is_refused(compression);
    }
}

fn mismatching_diff_id_is_refused(compression: Compression) {
    let mut c = Case::new();
    let tar = simple_tar();
    let l = c.oci("img", &[(tar.clone(), compression)]);
    // The layout as written (right diff_ids) builds.
    let (code, err, out) = c.build();
    assert_eq!(code, 0, "{err}");
    fs_err::remove_dir_all(out).unwrap();
    let blobs = c.path().join("img/blobs/sha256");
    let write = |bytes: &[u8]| {
        let d = Sha256Digest::of(bytes);
        fs_err::write(blobs.join(d.to_hex()), bytes).unwrap();
        d
    };
    let read = |d: &str| -> serde_json::Value {
        let hex = d.trim_start_matches("sha256:");
        serde_json::from_slice(&fs_err::read(blobs.join(hex)).unwrap()).unwrap()
    };
    // The config says the layer uncompresses to other bytes.
    let mut manifest = read(&l.manifest.to_hex());
    let mut config = read(manifest["config"]["digest"].as_str().unwrap());
    let wrong = Sha256Digest::of(b"other bytes");
    config["rootfs"]["diff_ids"] = json!([format!("sha256:{wrong}")]);
    let config = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = json!(format!("sha256:{}", write(&config)));
    manifest["config"]["size"] = json!(config.len());
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let md = write(&manifest);
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(c.path().join("img/index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = json!(format!("sha256:{md}"));
    index["manifests"][0]["size"] = json!(manifest.len());
    fs_err::write(
        c.path().join("img/index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    c.layers[0] = format!("[[rootfs.layers]]\noci = \"img\"\nmanifest = \"sha256:{md}\"\n");
    c.refused(&[
        "rootfs.diff_ids",
        &format!("sha256:{wrong}"),
        &format!("uncompresses to sha256:{}", Sha256Digest::of(&tar)),
    ]);
}

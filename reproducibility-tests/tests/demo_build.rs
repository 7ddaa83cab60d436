use std::path::Path;

use crate::util::{
    demo_build, demo_manifest, ok, repo, run_builder, tool, Conditions, DEMO_OUTPUT_FILES,
};

/// First differing byte of two files, for a useful failure message.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn assert_same_file(a: &Path, b: &Path) {
    let (x, y) = (fs_err::read(a).unwrap(), fs_err::read(b).unwrap());
    if let Some(off) = first_difference(&x, &y) {
        panic!(
            "not reproducible: {} and {} differ first at byte offset {off} ({} vs {} bytes)",
            a.display(),
            b.display(),
            x.len(),
            y.len()
        );
    }
}

#[test]
fn demo_is_bit_identical_under_different_conditions() {
    let manifest = demo_manifest();
    let tmp = tempfile::tempdir().unwrap();
    let a = Conditions {
        tz: "UTC",
        lc_all: "C",
        umask: "022",
        tmpdir: tmp.path().join("tmp-a"),
        cwd: repo(),
    };
    let b = Conditions {
        tz: "Pacific/Chatham",
        lc_all: "de_DE.UTF-8",
        umask: "077",
        tmpdir: tmp.path().join("other/tmp-b"),
        cwd: tmp.path().join("elsewhere"),
    };
    let out_a = tmp.path().join("a/out");
    let out_b = tmp.path().join("b/deeper/path/out");
    // Build A with a relative manifest path from the repository, B with an absolute one from
    // an unrelated directory.
    ok(
        &run_builder(
            &a,
            &[
                "build",
                "manifests/demo.toml",
                "--out",
                out_a.to_str().unwrap(),
            ],
        ),
        "build A",
    );
    ok(
        &run_builder(
            &b,
            &[
                "build",
                manifest.to_str().unwrap(),
                "--out",
                out_b.to_str().unwrap(),
            ],
        ),
        "build B",
    );
    for name in ["rootfs.img", "record.json", "cmdline"] {
        assert_same_file(&out_a.join(name), &out_b.join(name));
    }
    // Nothing host-specific in the record.
    let record = fs_err::read_to_string(out_a.join("record.json")).unwrap();
    for leak in [
        tmp.path().to_str().unwrap(),
        repo().to_str().unwrap(),
        "Chatham",
    ] {
        assert!(!record.contains(leak), "record.json contains {leak:?}");
    }
}

#[test]
fn record_names_the_outputs_as_they_are() {
    let out = demo_build();
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap();
    let outputs = record["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 8);
    for o in outputs {
        let name = o["name"].as_str().unwrap();
        let path = out.join(name);
        // sha256sum (coreutils) is the independent digest.
        let sum = tool("sha256sum", &[path.to_str().unwrap()]);
        let sum = String::from_utf8(sum.stdout).unwrap();
        assert_eq!(
            sum.split_whitespace().next().unwrap(),
            o["sha256"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            fs_err::metadata(&path).unwrap().len(),
            o["size"].as_u64().unwrap(),
            "{name}"
        );
    }
    let cmdline = fs_err::read_to_string(out.join("cmdline")).unwrap();
    assert_eq!(cmdline, record["kernel_cmdline"]["full"].as_str().unwrap());
    let mut names: Vec<_> = fs_err::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, DEMO_OUTPUT_FILES, "unexpected files in the output");
}

#[test]
fn demo_record_snapshot() {
    let out = demo_build();
    let record = fs_err::read_to_string(out.join("record.json")).unwrap();
    // Any change to the demo image's bytes shows up here for review.
    insta::assert_snapshot!("demo_record", record);
}

#[test]
fn json_flag_prints_the_record() {
    let manifest = demo_manifest();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("j");
    let o = crate::util::builder(&[
        "build",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    ok(&o, "build --json");
    assert_eq!(o.stdout, fs_err::read(out.join("record.json")).unwrap());
    assert!(
        o.stderr.is_empty(),
        "--quiet printed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Changing the model (here: one more pinned file on the model disk) changes the model disk's
/// root hash, the command line and every launch measurement, and not one byte of rootfs.img.
#[test]
fn changing_the_model_changes_its_disk_and_the_launch_digest_but_not_the_root_image() {
    let manifest = demo_manifest();
    let base = demo_build();
    let text = fs_err::read_to_string(&manifest).unwrap();
    let extra = "\n[[disks.files]]\npath = \"/NOTICE\"\nsource = \"files/motd\"\n\
        sha256 = \"f97ada0d8c3525aab287482c07b253fff5382ef6dd8b4c0667d39fe678d0d249\"\nmode = 0o644\n";
    // The model disk's tables end where [boot] starts; the new file belongs to it.
    let changed = text.replacen("\n[boot]", &format!("{extra}\n[boot]"), 1);
    assert_ne!(changed, text);
    // Beside the demo manifest, so its relative paths resolve the same way.
    let variant = tempfile::Builder::new()
        .prefix(".model-variant-")
        .suffix(".toml")
        .tempfile_in(manifest.parent().unwrap())
        .unwrap();
    fs_err::write(variant.path(), changed).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("variant");
    ok(
        &crate::util::build_quiet(variant.path(), &out),
        "build of the model variant",
    );

    let read = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&fs_err::read(dir.join("record.json")).unwrap()).unwrap()
    };
    let (a, b) = (read(base), read(&out));
    // Root image: byte for byte the same (cmp is the independent comparison).
    ok(
        &tool(
            "cmp",
            &[
                base.join("rootfs.img").to_str().unwrap(),
                out.join("rootfs.img").to_str().unwrap(),
            ],
        ),
        "cmp rootfs.img",
    );
    assert_eq!(a["rootfs"], b["rootfs"]);
    // Model disk, command line, launch measurements: all different.
    let disk_root =
        |r: &serde_json::Value| r["disks"][0]["filesystem"]["verity"]["root_hash"].clone();
    assert_ne!(disk_root(&a), disk_root(&b));
    let cmdline = |d: &Path| fs_err::read_to_string(d.join("cmdline")).unwrap();
    assert_ne!(cmdline(base), cmdline(&out));
    assert!(cmdline(&out).contains(disk_root(&b).as_str().unwrap()));
    let measurements = |r: &serde_json::Value| r["measurements"].as_array().unwrap().clone();
    let (ma, mb) = (measurements(&a), measurements(&b));
    assert_eq!(ma.len(), 3);
    for (x, y) in ma.iter().zip(&mb) {
        match x["platform"]["kind"].as_str().unwrap() {
            "snp" => assert_ne!(
                x["platform"]["launch_digest"], y["platform"]["launch_digest"],
                "{}",
                x["profile"]
            ),
            // MRTD covers the firmware only; the command line is in RTMR2.
            "tdx" => {
                assert_eq!(x["platform"]["mrtd"], y["platform"]["mrtd"]);
                assert_ne!(x["platform"]["rtmr2"], y["platform"]["rtmr2"]);
            }
            // The UKI carries the command line: systemd's stub measures it into PCR 11.
            "vtpm" => assert_ne!(x["platform"]["pcr11"], y["platform"]["pcr11"]),
            other => panic!("unexpected platform {other}"),
        }
    }
    // The new file is listed with the disk it is on.
    assert!(b["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["kind"] == "file" && i["disk"] == "model" && i["path"] == "/NOTICE"));
}

/// The demo's Rust components (the guest init and the embedding server), compiled again from a
/// copy of this workspace at another path (with a space in it) and with another target
/// directory, have exactly the bytes the record lists. `check` reuses the component cache, so
/// this is where the component recipe itself is shown to be reproducible.
#[test]
fn rust_components_are_bit_identical_from_another_checkout() {
    let out = demo_build();
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("another checkout");
    let listed = tool("git", &["-C", repo().to_str().unwrap(), "ls-files", "-z"]);
    ok(&listed, "git ls-files");
    for name in listed.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let rel = std::str::from_utf8(name).unwrap();
        let (from, to) = (repo().join(rel), other.join(rel));
        if !from.is_file() {
            continue; // deleted in the work tree but still in the index
        }
        fs_err::create_dir_all(to.parent().unwrap()).unwrap();
        fs_err::copy(&from, &to).unwrap();
    }
    let cargo_home = builder::plan::toolchain_env()
        .into_iter()
        .find(|(k, _)| *k == "CARGO_HOME")
        .map(|(_, v)| v)
        .unwrap();
    for (package, bin) in [
        ("guest-init", "enclave-init"),
        ("demo-server", "demo-server"),
    ] {
        let built = builder::components::rust::build(
            &other,
            &other.join("target/elsewhere"),
            &cargo_home,
            package,
            bin,
            &|_: &str| {},
        )
        .unwrap_or_else(|e| panic!("building {package}/{bin} in the copy: {e}"));
        let recorded = crate::util::rust_component(&record, bin);
        assert_eq!(
            recorded["sha256"],
            built.sha256.to_string().as_str(),
            "{bin} built from {} differs from the demo image's",
            other.display()
        );
    }
}

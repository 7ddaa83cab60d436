use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{
    demo_build, demo_manifest, flipped_copy, fsck_extract_preserving, listing_diff, ok, repo,
    sev_snp_measure, tool, tree_listing,
};

fn record(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap()
}

/// `install FLAGS -m MODE -o 0 -g 0 PATHS` (root-owned copies or directories), asserting
/// success.
fn install_as_root(flags: &[&str], mode: &str, paths: [&Path; 2]) {
    let mut args = flags.to_vec();
    args.extend(["-m", mode, "-o", "0", "-g", "0"]);
    args.extend(paths.map(|p| p.to_str().unwrap()));
    ok(
        &tool("install", &args),
        &format!("install {}", args.join(" ")),
    );
}

#[test]
fn veritysetup_verifies_and_detects_a_flipped_byte() {
    let out = demo_build();
    let r = record(out);
    let root = r["rootfs"]["verity"]["root_hash"].as_str().unwrap();
    let offset = r["rootfs"]["verity"]["hash_offset"].as_u64().unwrap();
    let img = out.join("rootfs.img");
    let img_s = img.to_str().unwrap();
    let off_arg = format!("--hash-offset={offset}");
    ok(
        &tool("veritysetup", &["verify", &off_arg, img_s, img_s, root]),
        "veritysetup verify",
    );

    // veritysetup's own reading of our superblock agrees with the record.
    let dump = tool("veritysetup", &["dump", &off_arg, img_s]);
    ok(&dump, "veritysetup dump");
    let dump = String::from_utf8(dump.stdout).unwrap();
    let field = |name: &str| {
        dump.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .map(|v| v.trim_start_matches(':').trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} in veritysetup dump:\n{dump}"))
    };
    assert_eq!(
        field("Salt"),
        r["rootfs"]["verity"]["salt"].as_str().unwrap()
    );
    assert_eq!(
        field("Data blocks"),
        r["rootfs"]["verity"]["data_blocks"].to_string()
    );
    assert_eq!(
        field("UUID"),
        r["rootfs"]["verity"]["uuid"].as_str().unwrap()
    );
    assert_eq!(field("Hash algorithm"), "sha256");

    // One flipped byte in the data area (in the middle of the file system).
    let tmp = tempfile::tempdir().unwrap();
    let bad = flipped_copy(&img, offset / 2, 0x01, tmp.path());
    let bad_s = bad.to_str().unwrap();
    let o = tool("veritysetup", &["verify", &off_arg, bad_s, bad_s, root]);
    assert!(
        !o.status.success(),
        "veritysetup accepted a corrupted data area"
    );
}

/// xattrs of every path under `root`, read with getfattr (attr package).
fn xattrs(root: &Path) -> BTreeMap<String, String> {
    let o = Command::new("getfattr")
        .args(["-R", "-P", "-d", "-m", "-", "-e", "hex", "."])
        .current_dir(root)
        .output()
        .expect("getfattr (package attr) must be installed");
    let text = String::from_utf8(o.stdout).unwrap();
    let mut out = BTreeMap::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let file = lines
            .next()
            .unwrap()
            .trim_start_matches("# file: ")
            .to_owned();
        let mut attrs: Vec<&str> = lines.collect();
        attrs.sort();
        out.insert(file, attrs.join(" "));
    }
    out
}

/// The reference flattening: umoci unpacks the same OCI image (zstd layers decompressed by the
/// zstd tool first, since umoci 0.4.7 has no zstd), GNU tar extracts the plain tar layer, and
/// `install` places the extra file.
fn reference_rootfs(work: &Path) -> PathBuf {
    let inputs = repo().join("manifests/demo-inputs");
    let layout = work.join("layout");
    ok(
        &tool(
            "cp",
            &[
                "-a",
                inputs.join("oci").to_str().unwrap(),
                layout.to_str().unwrap(),
            ],
        ),
        "cp",
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(blob(mdigest)).unwrap()).unwrap();
    for l in manifest["layers"].as_array_mut().unwrap() {
        if l["mediaType"].as_str().unwrap().ends_with("+zstd") {
            let src = blob(l["digest"].as_str().unwrap());
            let o = tool("zstd", &["-d", "-c", "-q", src.to_str().unwrap()]);
            ok(&o, "zstd -d");
            let d = measurements::Sha256Digest::of(&o.stdout);
            fs_err::write(blob(&d.to_hex()), &o.stdout).unwrap();
            l["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
            l["digest"] = format!("sha256:{d}").into();
            l["size"] = o.stdout.len().into();
        }
    }
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let md = measurements::Sha256Digest::of(&mbytes);
    fs_err::write(blob(&md.to_hex()), &mbytes).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = format!("sha256:{md}").into();
    index["manifests"][0]["size"] = mbytes.len().into();
    fs_err::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let bundle = work.join("bundle");
    let image = format!("{}:demo", layout.display());
    ok(
        &tool(
            "umoci",
            &["unpack", "--image", &image, bundle.to_str().unwrap()],
        ),
        "umoci unpack",
    );
    let rootfs = bundle.join("rootfs");
    ok(
        &tool(
            "tar",
            &[
                "-xpf",
                inputs.join("extra.tar").to_str().unwrap(),
                "-C",
                rootfs.to_str().unwrap(),
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
            ],
        ),
        "tar -x extra.tar",
    );
    let motd = repo().join("manifests/files/motd");
    install_as_root(&[], "0644", [&motd, &rootfs.join("etc/motd")]);
    // The guest init the builder compiled (the same file the build placed), and the workload
    // description the init reads, built here with Python's json module from the OCI config.
    let init =
        repo().join("target/enclave-components/x86_64-unknown-linux-gnu/release/enclave-init");
    install_as_root(&["-D"], "0755", [&init, &rootfs.join("sbin/enclave-init")]);
    // The workload (the second Rust component) and the model disk's mount point.
    let server =
        repo().join("target/enclave-components/x86_64-unknown-linux-gnu/release/demo-server");
    install_as_root(&[], "0755", [&server, &rootfs.join("usr/bin/demo-server")]);
    install_as_root(
        &["-d"],
        "0755",
        [&rootfs.join("models"), &rootfs.join("models/minilm")],
    );
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    let script = "import json,sys\nc=json.load(open(sys.argv[1]))['config']\nkeys=['Entrypoint','Cmd','Env','WorkingDir','User']\nsys.stdout.write(json.dumps({k:c[k] for k in keys if k in c},indent=2)+'\\n')";
    let o = tool("python3", &["-c", script, config.to_str().unwrap()]);
    ok(&o, "python3 workload.json");
    fs_err::create_dir_all(rootfs.join("etc/enclave")).unwrap();
    fs_err::write(rootfs.join("etc/enclave/workload.json"), &o.stdout).unwrap();
    rootfs
}

#[test]
fn fsck_erofs_extraction_matches_an_independent_flattening() {
    let _ = demo_manifest();
    let out = demo_build();
    let work = tempfile::tempdir().unwrap();
    let img = out.join("rootfs.img");
    ok(&tool("fsck.erofs", &[img.to_str().unwrap()]), "fsck.erofs");
    let extracted = work.path().join("extracted");
    fsck_extract_preserving(&img, &extracted);
    let reference = reference_rootfs(work.path());
    let (ours, theirs) = (
        tree_listing(&extracted, false),
        tree_listing(&reference, false),
    );
    let d = listing_diff(&ours, &theirs);
    assert!(
        d.is_empty(),
        "fsck.erofs --extract differs from the umoci/tar flattening:\n{d}"
    );
}

#[test]
fn kernel_mount_matches_an_independent_flattening_including_xattrs_and_hardlinks() {
    let _ = demo_manifest();
    let out = demo_build();
    let work = tempfile::tempdir().unwrap();
    let reference = reference_rootfs(work.path());
    let mnt = work.path().join("mnt");
    fs_err::create_dir_all(&mnt).unwrap();
    // The Linux kernel's own EROFS driver is the reader here (needs root and loop devices,
    // which CI has).
    let img = out.join("rootfs.img");
    ok(
        &tool(
            "mount",
            &[
                "-t",
                "erofs",
                "-o",
                "loop,ro",
                img.to_str().unwrap(),
                mnt.to_str().unwrap(),
            ],
        ),
        "mount -t erofs",
    );
    let ours = tree_listing(&mnt, true);
    let our_x = xattrs(&mnt);
    let _ = tool("umount", &[mnt.to_str().unwrap()]);
    let theirs = tree_listing(&reference, true);
    let d = listing_diff(&ours, &theirs);
    assert!(
        d.is_empty(),
        "the mounted image differs from the umoci/tar flattening:\n{d}"
    );
    let d = listing_diff(&our_x, &xattrs(&reference));
    assert!(
        d.is_empty(),
        "xattrs differ from the umoci/tar flattening:\n{d}"
    );
    assert!(
        our_x.values().any(|v| v.contains("security.capability")),
        "{our_x:?}"
    );
}

/// The record's SEV-SNP launch digest equals what sev-snp-measure computes over the build's own
/// `vmlinuz` and `cmdline` with the profile's firmware.
#[test]
fn record_snp_measurement_matches_sev_snp_measure() {
    let out = demo_build();
    let r = record(out);
    let m = r["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["kind"] == "snp")
        .expect("the demo manifest has an SNP profile");
    let p = &m["platform"];
    let fw = reproducibility_tests::demo::fixtures_dir().join("firmware/OVMF.amdsev-2026.08.fd");
    assert_eq!(
        m["firmware_sha256"].as_str().unwrap(),
        measurements::Sha256Digest::of(&fs_err::read(&fw).unwrap()).to_hex()
    );
    let theirs = sev_snp_measure(
        out,
        &fw,
        p["vcpus"].as_u64().unwrap(),
        p["vcpu_type"].as_str().unwrap(),
        p["guest_features"].as_u64().unwrap(),
    );
    assert_eq!(theirs, p["launch_digest"].as_str().unwrap());
}

/// The demo record's TDX profile measurement.
fn tdx_measurement(record: &serde_json::Value) -> &serde_json::Value {
    record["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["kind"] == "tdx")
        .expect("the demo manifest has a TDX profile")
}

/// The record's TDX MRTD and RTMR2 equal the independent spec walk-through
/// (measurements/tests/vectors/tdx/tdx_reference.py, standard-library Python written from the
/// Intel specifications) on the same firmware and command line.
#[test]
fn record_tdx_measurement_matches_the_spec_walkthrough() {
    let out = demo_build();
    let r = record(out);
    let m = tdx_measurement(&r);
    let fw =
        reproducibility_tests::demo::fixtures_dir().join("firmware/OVMF.inteltdx.ms-2026.08.fd");
    let script = repo().join("measurements/tests/vectors/tdx/tdx_reference.py");
    let cmdline = fs_err::read_to_string(out.join("cmdline")).unwrap();
    let o = tool(
        "python3",
        &[
            script.to_str().unwrap(),
            fw.to_str().unwrap(),
            "--cmdline",
            &cmdline,
            "--initrd",
            out.join("initrd.img").to_str().unwrap(),
        ],
    );
    ok(&o, "tdx_reference.py");
    let text = String::from_utf8(o.stdout).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in:\n{text}"))
            .to_owned()
    };
    assert_eq!(
        get("mrtd_single_pass"),
        m["platform"]["mrtd"].as_str().unwrap()
    );
    assert_eq!(get("rtmr2"), m["platform"]["rtmr2"].as_str().unwrap());
}

/// The record's TDX MRTD and RTMR2 equal dstack-mr's for the demo's own artifacts: an
/// implementation used on TDX hardware, built by hand from Dstack-TEE/dstack (provenance in
/// measurements/tests/vectors/tdx/dstack-mr.toml). It appends ` initrd=initrd` to the command
/// line as OVMF does; a record measuring the verbatim line fails here.
#[test]
fn record_tdx_measurement_matches_dstack_mr() {
    let r = record(demo_build());
    let m = tdx_measurement(&r);
    let vectors =
        fs_err::read_to_string(repo().join("measurements/tests/vectors/tdx/dstack-mr.toml"))
            .unwrap();
    let get = |k: &str| {
        vectors
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} = ")))
            .unwrap_or_else(|| panic!("no {k} in dstack-mr.toml"))
            .trim_matches('"')
            .to_owned()
    };
    assert_eq!(m["platform"]["page_add_order"], "single-pass");
    assert_eq!(
        m["platform"]["mrtd"].as_str().unwrap(),
        get("demo_mrtd_single_pass")
    );
    assert_eq!(m["platform"]["rtmr2"].as_str().unwrap(), get("demo_rtmr2"));
}

/// GNU cpio reads the build's initrd.img as a valid newc archive (empty: the kernel needs
/// nothing from it), and its length is a whole number of 512-byte blocks.
#[test]
fn cpio_reads_the_initrd() {
    let out = demo_build();
    let initrd = out.join("initrd.img");
    let o = Command::new("cpio")
        .args([
            "-i",
            "-t",
            "-v",
            "-H",
            "newc",
            "-F",
            initrd.to_str().unwrap(),
        ])
        .output()
        .expect("cpio must be installed");
    ok(&o, "cpio -it");
    assert!(
        String::from_utf8_lossy(&o.stdout).trim().is_empty(),
        "{o:?}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("0 blocks")
            || String::from_utf8_lossy(&o.stderr).contains("1 block"),
        "{o:?}"
    );
    assert_eq!(fs_err::metadata(&initrd).unwrap().len() % 512, 0);
}

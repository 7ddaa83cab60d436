//! Data disks and wheel inputs, checked by independent tools: `veritysetup` reads each disk's
//! verity tree with the record's parameters and with the table the kernel is given,
//! `fsck.erofs` extracts the disk and the result equals what Python's `zipfile` extracts from
//! the wheel, `sha256sum` agrees with the record's member digests, `sev-snp-measure` agrees
//! with the launch digest after a model change (and `rootfs.img` does not change), bad wheels
//! are refused, builds under different conditions give identical disks, and a disk's build
//! takes no more memory for a gigabyte more of weights (the kernel's peak RSS count).
//!
//! The wheels are written by Python's standard library (`zipfile`, and `csv` + `hashlib` +
//! `base64` for `RECORD`, as PEP 376/427 and pip's own wheel builder write it): this machine's
//! setuptools (65.5) cannot build wheels without the `wheel` package, which CI does not have.
//! The builder reads them with the `zip` crate and its own RECORD parser, so the writer is
//! independent of the reader.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use measurements::Sha256Digest;
use serde_json::{json, Value};

use crate::util::{
    assert_refused, build_ok, build_quiet, build_quiet_args, builder, builder_bin, flipped_copy,
    fsck_extract, fsck_extract_preserving, listing_diff, manifest_head, ok, project_dir,
    run_builder, sev_snp_measure, tool, tree_listing, write_in, Conditions, OVMF, OVMF_SNP,
};

/// Python (standard library only) that writes, rewrites and extracts wheels.
///
/// - `build SPEC.json`: a wheel with the spec's members (name, hex data, mode: permission bits
///   of a regular file unless it has file-type bits; a name ending in `/` is a directory
///   entry); with `record`, a `RECORD` listing every file member except the spec's
///   `unrecorded` ones, written with the `csv` module (quoting names with commas).
/// - `rezip IN OUT MEMBER DATA_FILE`: the same zip with one member's bytes replaced (RECORD
///   kept as it was).
/// - `extract IN DIR`: `zipfile` extraction, with pip's executable-bit rule for modes.
const WHEEL_PY: &str = r#"
import base64, csv, hashlib, io, json, os, sys, zipfile

def info(name, mode):
    zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    if name.endswith("/"):
        zi.external_attr = (0o040000 | mode) << 16 | 0x10
    elif mode & 0o170000:
        zi.external_attr = mode << 16
    else:
        zi.external_attr = (0o100000 | mode) << 16
    zi.compress_type = zipfile.ZIP_DEFLATED
    return zi

cmd = sys.argv[1]
if cmd == "build":
    spec = json.load(open(sys.argv[2]))
    with zipfile.ZipFile(spec["out"], "w") as z:
        rows = []
        for m in spec["members"]:
            data = bytes.fromhex(m["data"])
            z.writestr(info(m["name"], m["mode"]), data)
            if m["name"].endswith("/") or m["name"] in spec.get("unrecorded", []):
                continue
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append((m["name"], "sha256=" + digest, len(data)))
        if spec.get("record"):
            rows.append((spec["record"], "", ""))
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(rows)
            z.writestr(info(spec["record"], 0o644), text.getvalue())
elif cmd == "rezip":
    src, dst, member, data_file = sys.argv[2:6]
    new = open(data_file, "rb").read()
    replaced = False
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for zi in a.infolist():
            if zi.filename == member:
                replaced = True
            b.writestr(zi, new if zi.filename == member else a.read(zi))
    assert replaced, member
elif cmd == "extract":
    src, dst = sys.argv[2:4]
    with zipfile.ZipFile(src) as z:
        for zi in z.infolist():
            path = z.extract(zi, dst)
            if not zi.is_dir():
                os.chmod(path, 0o755 if (zi.external_attr >> 16) & 0o111 else 0o644)
else:
    sys.exit("unknown command " + cmd)
"#;

/// The test wheel's distribution directory and the `take` directory.
const DIST_INFO: &str = "tinymodel-0.1.0.dist-info";
const WHEEL: &str = "tinymodel-0.1.0-py3-none-any.whl";
const TAKE: &str = "tinymodel/model";
/// Where the disk is mounted in the guest, and where the wheel and the file go on the disk.
const MOUNT: &str = "/models/tiny";
const INTO: &str = "/weights";
const NOTE_PATH: &str = "/notes/README.txt";
const NOTE_V1: &[u8] = b"model notes, version 1\n";
const NOTE_V2: &[u8] = b"model notes, version 2\n";

/// The SNP profile is measured for each of these vCPU counts (one launch digest each).
const SNP_VCPUS: [u32; 6] = [1, 2, 4, 8, 16, 64];
const SNP_VCPU_TYPE: &str = "EPYC-Milan";

/// One wheel member: name, bytes, Unix mode.
type Member = (String, Vec<u8>, u32);

/// The test wheel's members: a small package whose `model/` directory is the disk's content
/// (nested directories, an executable, a file spanning many 4 KiB blocks).
fn model_members() -> Vec<Member> {
    let m = |n: &str, d: &[u8], mode: u32| (n.to_owned(), d.to_vec(), mode);
    vec![
        m("tinymodel/__init__.py", b"MODEL = 'model'\n", 0o644),
        m(
            "tinymodel/model/config.json",
            b"{\"hidden_size\": 8, \"layers\": 2}\n",
            0o644,
        ),
        m(
            "tinymodel/model/weights.bin",
            &reproducibility_tests::demo::pattern(0xd15c, 200_000 + 17),
            0o644,
        ),
        m(
            "tinymodel/model/tokenizer/vocab.txt",
            b"[PAD]\n[UNK]\nhello\nworld\n",
            0o644,
        ),
        m(
            "tinymodel/model/convert.sh",
            b"#!/bin/sh\necho convert\n",
            0o755,
        ),
        // An explicit directory entry, names that RECORD must quote or that are not ASCII,
        // and an empty member.
        m("tinymodel/model/tokenizer/", b"", 0o755),
        m("tinymodel/model/tokenizer/merges, v2.txt", b"h e\nl l\n", 0o644),
        m("tinymodel/model/r\u{e9}sum\u{e9} \"\u{2603}\".txt", b"snow\n", 0o644),
        m("tinymodel/model/empty", b"", 0o644),
        m(
            &format!("{DIST_INFO}/METADATA"),
            b"Metadata-Version: 2.1\nName: tinymodel\nVersion: 0.1.0\n\n",
            0o644,
        ),
        m(
            &format!("{DIST_INFO}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: python-zipfile (test)\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            0o644,
        ),
    ]
}

fn python(args: &[&str], what: &str) -> Output {
    let mut all = vec!["-c", WHEEL_PY];
    all.extend_from_slice(args);
    let o = tool("python3", &all);
    ok(&o, what);
    o
}

/// Writes a wheel with Python's `zipfile`; `record` adds a RECORD listing every member but
/// the `unrecorded` ones.
fn write_wheel(path: &Path, members: &[Member], record: bool, unrecorded: &[&str]) {
    let spec = json!({
        "out": path,
        "members": members
            .iter()
            .map(|(n, d, m)| json!({"name": n, "data": hex::encode(d), "mode": m}))
            .collect::<Vec<_>>(),
        "record": record.then(|| format!("{DIST_INFO}/RECORD")),
        "unrecorded": unrecorded,
    });
    let spec_path = path.with_extension("json");
    fs_err::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    python(
        &["build", spec_path.to_str().unwrap()],
        "python3 wheel build",
    );
}

fn bytes_of(path: &Path) -> Vec<u8> {
    fs_err::read(path).unwrap()
}

fn sha256_file(path: &Path) -> String {
    Sha256Digest::of(&fs_err::read(path).unwrap()).to_hex()
}

/// `sha256sum FILE`, the independent digest.
fn sha256sum(path: &Path) -> String {
    let o = tool("sha256sum", &[path.to_str().unwrap()]);
    ok(&o, "sha256sum");
    String::from_utf8(o.stdout).unwrap()[..64].to_owned()
}

/// A wheel entry of a manifest.
struct WheelSpec {
    file: String,
    sha256: String,
    take: Option<String>,
}

/// A scratch project: small root layer, fake kernel, fixture firmware, the test wheel and the
/// disk's extra file, all in one temporary directory; manifests are written beside them.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = project_dir(b"disks\n", |l| {
            l.dir("usr", 0o755)
                .file("usr/hello", 0o755, b"#!/bin/sh\necho hello\n");
        });
        let p = dir.path();
        // Any pinned bytes serve as the kernel: the build copies them and SNP hashes them.
        fs_err::write(p.join("vmlinuz"), b"a kernel stand-in for the disk tests\n").unwrap();
        let fixtures = reproducibility_tests::demo::fixtures_dir();
        for (f, _) in [OVMF, OVMF_SNP] {
            let name = Path::new(f).file_name().unwrap();
            fs_err::copy(fixtures.join(f), p.join(name)).unwrap();
        }
        write_wheel(&p.join(WHEEL), &model_members(), true, &[]);
        fs_err::write(p.join("notes.txt"), NOTE_V1).unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The good wheel's entry (pinned, with `take`).
    fn good_wheel(&self) -> WheelSpec {
        WheelSpec {
            file: WHEEL.to_owned(),
            sha256: sha256_file(&self.path().join(WHEEL)),
            take: Some(TAKE.to_owned()),
        }
    }

    /// Writes manifest `name` with one disk holding `wheel` and the note file `note` (a file in
    /// the project), plus one SNP profile.
    fn manifest(&self, name: &str, wheel: &WheelSpec, note: &str) -> PathBuf {
        self.manifest_with(name, wheel, note, "")
    }

    /// [`Project::manifest`] with `extra` TOML appended (more disks, root wheels).
    fn manifest_with(&self, name: &str, wheel: &WheelSpec, note: &str, extra: &str) -> PathBuf {
        let p = self.path();
        let pin = |f: &str| sha256_file(&p.join(f));
        let fw = |(f, sha): (&str, &str)| {
            format!(
                "{{ path = \"{}\", sha256 = \"{sha}\" }}",
                Path::new(f).file_name().unwrap().to_str().unwrap()
            )
        };
        let take = wheel
            .take
            .as_ref()
            .map(|t| format!("take = \"{t}\"\n"))
            .unwrap_or_default();
        let text = format!(
            r#"{head}
[boot]
kernel = {{ path = "vmlinuz", sha256 = "{kernel}" }}
firmware = {fw}
cmdline = "console=ttyS0"

[[profiles]]
name = "snp"
platform = "snp"
firmware = {fw_snp}
vcpus = {SNP_VCPUS:?}
vcpu_type = "{SNP_VCPU_TYPE}"
guest_features = 0x1

[[disks]]
name = "model"
mount = "{MOUNT}"

[[disks.wheels]]
wheel = "{wheel_file}"
sha256 = "{wheel_sha}"
{take}into = "{INTO}"

[[disks.files]]
path = "{NOTE_PATH}"
source = "{note}"
sha256 = "{note_sha}"
mode = 0o640
uid = 1000
gid = 100
{extra}"#,
            head = manifest_head("disks-test", "base.tar", &pin("base.tar")),
            kernel = pin("vmlinuz"),
            fw = fw(OVMF),
            fw_snp = fw(OVMF_SNP),
            wheel_file = wheel.file,
            wheel_sha = wheel.sha256,
            note_sha = pin(note),
        );
        write_in(p, name, &text)
    }

    /// Builds `manifest` into `out` (a name in the project), asserting success.
    fn build(&self, manifest: &Path, out: &str) -> PathBuf {
        build_ok(manifest, self.path().join(out))
    }

    /// Builds `manifest`, expecting refusal: exit code 3, no output directory and no staging
    /// directory left, and stderr naming every one of `needles`.
    fn refused(&self, manifest: &Path, needles: &[&str]) {
        let out = self.path().join("refused-out");
        assert_refused(&build_quiet(manifest, &out), &out, self.path(), needles);
    }
}

fn record(out: &Path) -> Value {
    serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap()
}

/// The record's only disk.
fn disk(r: &Value) -> &Value {
    let disks = r["disks"].as_array().expect("record.json has disks");
    assert_eq!(disks.len(), 1, "{disks:?}");
    &disks[0]
}

fn assert_same_tree(ours: &Path, reference: &Path) {
    let d = listing_diff(&tree_listing(ours, true), &tree_listing(reference, true));
    assert!(d.is_empty(), "the disk differs from the reference:\n{d}");
}

/// `veritysetup verify` of a disk image against its record's `verity` values (hash offset
/// and root hash), asserting success.
fn verity_verify(img: &Path, verity: &serde_json::Value) {
    let s = img.to_str().unwrap();
    let offset = format!("--hash-offset={}", verity["hash_offset"]);
    let root = verity["root_hash"].as_str().unwrap();
    let o = tool("veritysetup", &["verify", &offset, s, s, root]);
    ok(&o, &format!("veritysetup verify {}", img.display()));
}

/// `veritysetup verify --no-superblock` of a disk image given only the fields of its
/// dm-verity table on the kernel command line (`table`, split at spaces: block sizes, data
/// blocks, hash start block, root hash, salt), asserting success.
fn verity_verify_table(img: &Path, table: &[&str]) {
    let s = img.to_str().unwrap();
    let hash_start: u64 = table[9].parse().unwrap();
    let args = [
        "verify",
        "--no-superblock",
        "--format=1",
        "--hash=sha256",
        &format!("--data-block-size={}", table[6]),
        &format!("--hash-block-size={}", table[7]),
        &format!("--data-blocks={}", table[8]),
        &format!("--hash-offset={}", hash_start * 4096),
        &format!("--salt={}", table[12]),
        s,
        s,
        table[11],
    ];
    let o = tool("veritysetup", &args);
    ok(
        &o,
        &format!("veritysetup verify --no-superblock (the kernel's table) {s}"),
    );
}

/// `veritysetup dump` of an image's superblock, as field -> value.
fn verity_dump(img: &Path, hash_offset: u64) -> BTreeMap<String, String> {
    let o = tool(
        "veritysetup",
        &[
            "dump",
            &format!("--hash-offset={hash_offset}"),
            img.to_str().unwrap(),
        ],
    );
    ok(&o, "veritysetup dump");
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The dm-verity table `dm-mod.create=` gives the kernel for device `name`.
fn dm_table<'a>(cmdline: &'a str, name: &str, minor: u32) -> &'a str {
    let create = cmdline
        .split_once("dm-mod.create=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .unwrap_or_else(|| panic!("no dm-mod.create=\"...\" in {cmdline}"))
        .0;
    let prefix = format!("{name},,{minor},ro,");
    create
        .split(';')
        .find_map(|d| d.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} device in dm-mod.create=\"{create}\""))
}

#[test]
fn disk_verity_and_contents_match_veritysetup_fsck_erofs_and_zipfile() {
    let p = Project::new();
    let manifest = p.manifest("m.toml", &p.good_wheel(), "notes.txt");
    let out = p.build(&manifest, "out");
    let r = record(&out);
    let d = disk(&r);
    assert_eq!(d["name"], "model");
    assert_eq!(d["mount"], MOUNT);
    assert_eq!(d["image"], "disk-model.img");
    assert_eq!(d["device"], "/dev/vdb");
    assert_eq!(d["dm_device"], "/dev/dm-1");
    let fs = &d["filesystem"];
    assert_eq!(fs["filesystem"], "erofs");
    let v = &fs["verity"];
    let root = v["root_hash"].as_str().unwrap();
    let salt = v["salt"].as_str().unwrap();
    let hash_offset = v["hash_offset"].as_u64().unwrap();
    let data_size = fs["data_size"].as_u64().unwrap();
    let img = out.join("disk-model.img");
    let img_s = img.to_str().unwrap();
    let off_arg = format!("--hash-offset={hash_offset}");

    // The output list names the disk with its real digest.
    let listed = r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "disk-model.img")
        .expect("disk-model.img in outputs");
    assert_eq!(listed["sha256"].as_str().unwrap(), sha256sum(&img));

    // veritysetup checks the whole tree against the record's root hash ...
    ok(
        &tool("veritysetup", &["verify", &off_arg, img_s, img_s, root]),
        "veritysetup verify (disk)",
    );
    // ... reads the same parameters from our superblock ...
    let dump = verity_dump(&img, hash_offset);
    assert_eq!(dump["Salt"], salt, "{dump:?}");
    assert_eq!(
        dump["Data blocks"],
        v["data_blocks"].to_string(),
        "{dump:?}"
    );
    assert_eq!(dump["UUID"], v["uuid"].as_str().unwrap(), "{dump:?}");
    assert_eq!(dump["Hash algorithm"], "sha256", "{dump:?}");
    assert_eq!(dump["Data block size"], "4096", "{dump:?}");
    assert_eq!(
        v["data_blocks"].as_u64().unwrap() * 4096,
        data_size,
        "data_size is a whole number of data blocks"
    );
    // ... and rejects a flipped byte in the file system.
    let tmp = tempfile::tempdir().unwrap();
    let bad = flipped_copy(&img, data_size / 2, 0x40, tmp.path());
    let bad_s = bad.to_str().unwrap();
    assert!(
        !tool("veritysetup", &["verify", &off_arg, bad_s, bad_s, root])
            .status
            .success(),
        "veritysetup accepted a corrupted disk"
    );

    // The table the kernel gets verifies too: veritysetup without the superblock, given only
    // the table's fields (hash start block, data blocks, salt, root hash).
    let cmdline = fs_err::read_to_string(out.join("cmdline")).unwrap();
    assert_eq!(cmdline, r["kernel_cmdline"]["full"].as_str().unwrap());
    let table: Vec<&str> = dm_table(&cmdline, "model", 1).split(' ').collect();
    assert_eq!(
        table[..8],
        [
            "0",
            &(data_size / 512).to_string(),
            "verity",
            "1",
            "/dev/vdb",
            "/dev/vdb",
            "4096",
            "4096"
        ],
        "{table:?}"
    );
    assert_eq!(table[8], v["data_blocks"].to_string());
    assert_eq!((table[11], table[12]), (root, salt), "{table:?}");
    verity_verify_table(&img, &table);
    assert!(cmdline.contains(" enclave.require=/dev/dm-1"), "{cmdline}");
    assert!(
        cmdline.contains(&format!(" enclave.mount=/dev/dm-1,{MOUNT},erofs,ro")),
        "{cmdline}"
    );

    // fsck.erofs reads the data area alone (the verity tail cut off at data_size).
    let data = tmp.path().join("data.img");
    fs_err::write(&data, &bytes_of(&img)[..data_size as usize]).unwrap();
    ok(&tool("fsck.erofs", &[data.to_str().unwrap()]), "fsck.erofs");
    // dump.erofs reads the record's file-system UUID and size from the superblock.
    let o = tool("dump.erofs", &["-s", data.to_str().unwrap()]);
    ok(&o, "dump.erofs -s");
    let sb = String::from_utf8(o.stdout).unwrap();
    let sb_field = |name: &str| {
        sb.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in dump.erofs -s:\n{sb}"))
    };
    assert_eq!(sb_field("Filesystem UUID"), fs["uuid"].as_str().unwrap());
    assert_eq!(
        sb_field("Filesystem blocks").parse::<u64>().unwrap() * 4096,
        data_size,
        "{sb}"
    );
    let extracted = tmp.path().join("extracted");
    fsck_extract_preserving(&data, &extracted);

    // The reference: Python's zipfile extracts the wheel; the `take` directory goes to `into`,
    // and `install` places the extra file.
    let unzipped = tmp.path().join("unzipped");
    python(
        &[
            "extract",
            p.path().join(WHEEL).to_str().unwrap(),
            unzipped.to_str().unwrap(),
        ],
        "python3 zipfile extract",
    );
    let reference = tmp.path().join("reference");
    fs_err::create_dir_all(&reference).unwrap();
    fs_err::rename(
        unzipped.join(TAKE),
        reference.join(INTO.trim_start_matches('/')),
    )
    .unwrap();
    ok(
        &tool(
            "install",
            &[
                "-D",
                "-m",
                "0640",
                "-o",
                "1000",
                "-g",
                "100",
                p.path().join("notes.txt").to_str().unwrap(),
                reference
                    .join(NOTE_PATH.trim_start_matches('/'))
                    .to_str()
                    .unwrap(),
            ],
        ),
        "install notes",
    );
    assert_same_tree(&extracted, &reference);
    assert!(
        extracted.join("weights/weights.bin").is_file(),
        "{:?}",
        tree_listing(&extracted, true)
    );
    // The kernel's own EROFS driver reads the whole disk image the same way (it ignores the
    // verity tail); needs root and a loop device, like the suite's root-image mount test.
    let mnt = tmp.path().join("mnt");
    fs_err::create_dir_all(&mnt).unwrap();
    ok(
        &tool(
            "mount",
            &["-t", "erofs", "-o", "loop,ro", img_s, mnt.to_str().unwrap()],
        ),
        "mount -t erofs disk-model.img",
    );
    let mounted = tree_listing(&mnt, true);
    ok(&tool("umount", &[mnt.to_str().unwrap()]), "umount");
    assert_eq!(
        mounted,
        tree_listing(&reference, true),
        "the mounted disk differs"
    );
    // The executable bit survived (the reference applied pip's rule, the disk agrees).
    let conv = extracted.join("weights/convert.sh");
    assert_eq!(
        fs_err::metadata(&conv).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // The record lists every placed member with the digest sha256sum computes on the
    // extracted file, and nothing else.
    let inputs = r["inputs"].as_array().unwrap();
    let wheel = inputs
        .iter()
        .find(|i| i["kind"] == "wheel")
        .expect("a wheel input");
    assert_eq!(wheel["disk"], "model");
    assert_eq!(wheel["source"], WHEEL);
    assert_eq!(
        wheel["sha256"].as_str().unwrap(),
        sha256sum(&p.path().join(WHEEL))
    );
    assert_eq!(
        (&wheel["name"], &wheel["version"]),
        (&json!("tinymodel"), &json!("0.1.0"))
    );
    let mut recorded = Vec::new();
    for f in wheel["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let on_disk = extracted.join(path.trim_start_matches('/'));
        assert_eq!(f["sha256"].as_str().unwrap(), sha256sum(&on_disk), "{path}");
        assert_eq!(
            f["size"].as_u64().unwrap(),
            fs_err::metadata(&on_disk).unwrap().len()
        );
        recorded.push(path.to_owned());
    }
    let mut expected: Vec<String> = model_members()
        .iter()
        .filter(|(n, _, _)| !n.ends_with('/'))
        .filter_map(|(n, _, _)| n.strip_prefix(&format!("{TAKE}/")))
        .map(|rel| format!("{INTO}/{rel}"))
        .collect();
    expected.sort();
    assert_eq!(recorded, expected);
    let note = inputs
        .iter()
        .find(|i| i["kind"] == "file" && i["disk"] == "model")
        .expect("the disk's file input");
    assert_eq!(note["path"], NOTE_PATH);
    assert_eq!(
        note["sha256"].as_str().unwrap(),
        sha256sum(&p.path().join("notes.txt"))
    );

    // The root image carries only the empty mount point.
    let root_x = tmp.path().join("root");
    let root_img = out.join("rootfs.img");
    fsck_extract(&root_img, &root_x);
    let mount = root_x.join(MOUNT.trim_start_matches('/'));
    assert!(mount.is_dir(), "no mount point {MOUNT} in rootfs.img");
    assert_eq!(fs_err::read_dir(&mount).unwrap().count(), 0);
    let root_listing = tree_listing(&root_x, true);
    assert!(
        !root_listing
            .keys()
            .any(|k| k.contains("weights") || k.contains("notes")),
        "disk content leaked into rootfs.img: {root_listing:?}"
    );
}

/// The record's SNP launch digests, one per vCPU count of the profile, each checked against
/// sev-snp-measure over the output's files; returns them joined, in the manifest's count order.
fn snp_digest_checked(out: &Path) -> String {
    let r = record(out);
    let entries: Vec<&serde_json::Value> = r["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["platform"]["kind"] == "snp")
        .collect();
    let counts: Vec<u64> = entries
        .iter()
        .map(|m| m["platform"]["vcpus"].as_u64().unwrap())
        .collect();
    assert_eq!(
        counts,
        SNP_VCPUS.map(u64::from),
        "one SNP measurement per listed vCPU count, in manifest order"
    );
    let fw = fixture(OVMF_SNP.0);
    let mut digests = Vec::new();
    for (m, vcpus) in entries.iter().zip(SNP_VCPUS) {
        let theirs = sev_snp_measure(out, &fw, vcpus.into(), SNP_VCPU_TYPE, 0x1);
        let ours = m["platform"]["launch_digest"].as_str().unwrap();
        assert_eq!(
            ours,
            theirs,
            "record vs sev-snp-measure for {vcpus} vCPUs, {}",
            out.display()
        );
        digests.push(theirs);
    }
    let distinct: std::collections::BTreeSet<&String> = digests.iter().collect();
    assert_eq!(
        distinct.len(),
        digests.len(),
        "each vCPU count has its own digest"
    );
    digests.join(",")
}

/// A file in `../shared/fixtures`.
fn fixture(rel: &str) -> PathBuf {
    reproducibility_tests::demo::fixtures_dir().join(rel)
}

#[test]
fn changing_a_disk_file_changes_the_disk_cmdline_and_launch_digest_but_not_rootfs() {
    let p = Project::new();
    let a = p.build(&p.manifest("a.toml", &p.good_wheel(), "notes.txt"), "a");
    fs_err::write(p.path().join("notes-v2.txt"), NOTE_V2).unwrap();
    let b = p.build(&p.manifest("b.toml", &p.good_wheel(), "notes-v2.txt"), "b");
    let (ra, rb) = (record(&a), record(&b));
    let (va, vb) = (
        &disk(&ra)["filesystem"]["verity"],
        &disk(&rb)["filesystem"]["verity"],
    );

    // The disk changed, and veritysetup checks each disk against its own record.
    let (root_a, root_b) = (
        va["root_hash"].as_str().unwrap(),
        vb["root_hash"].as_str().unwrap(),
    );
    assert_ne!(root_a, root_b, "the disk's root hash did not change");
    for (out, v) in [(&a, va), (&b, vb)] {
        let img = out.join("disk-model.img");
        verity_verify(&img, v);
    }
    assert_ne!(
        sha256sum(&a.join("disk-model.img")),
        sha256sum(&b.join("disk-model.img"))
    );

    // The command line changed only in the disk's identity (root hash and salt; the note has
    // the same length, so the sizes are equal).
    let (ca, cb) = (
        fs_err::read_to_string(a.join("cmdline")).unwrap(),
        fs_err::read_to_string(b.join("cmdline")).unwrap(),
    );
    assert_ne!(ca, cb);
    assert!(cb.contains(root_b) && !cb.contains(root_a), "{cb}");
    assert_eq!(
        ca.replace(root_a, root_b)
            .replace(va["salt"].as_str().unwrap(), vb["salt"].as_str().unwrap()),
        cb
    );

    // The root image is byte for byte the same, and so is its verity identity.
    assert_eq!(
        bytes_of(&a.join("rootfs.img")),
        bytes_of(&b.join("rootfs.img")),
        "rootfs.img changed when only a data disk changed"
    );
    assert_eq!(ra["rootfs"], rb["rootfs"]);

    // The launch digest changed, and sev-snp-measure computes each one from the output's own
    // files.
    let (da, db) = (snp_digest_checked(&a), snp_digest_checked(&b));
    assert_ne!(da, db, "the SNP launch digest did not change with the disk");
}

/// A project whose manifest uses `wheel` (written into the project) with `take`.
fn bad_wheel_manifest(p: &Project, file: &str, take: Option<&str>) -> PathBuf {
    let spec = WheelSpec {
        file: file.to_owned(),
        sha256: sha256_file(&p.path().join(file)),
        take: take.map(str::to_owned),
    };
    p.manifest("bad.toml", &spec, "notes.txt")
}

#[test]
fn wheel_with_altered_member_and_kept_record_is_refused() {
    let p = Project::new();
    // Python rewrites the zip with one member's bytes changed and RECORD untouched; the outer
    // pin is the new file's, so only the member-by-member RECORD check can catch it.
    let evil = p.path().join("evil.bin");
    fs_err::write(&evil, b"{\"hidden_size\": 9, \"layers\": 2}\n").unwrap();
    let file = "tinymodel-0.1.0-py3-none-any.altered.whl";
    python(
        &[
            "rezip",
            p.path().join(WHEEL).to_str().unwrap(),
            p.path().join(file).to_str().unwrap(),
            "tinymodel/model/config.json",
            evil.to_str().unwrap(),
        ],
        "python3 rezip",
    );
    let m = bad_wheel_manifest(&p, file, Some(TAKE));
    let found = sha256sum(&evil);
    let original = p.path().join("original.json");
    let config = model_members()
        .into_iter()
        .find(|(n, _, _)| n == "tinymodel/model/config.json")
        .unwrap();
    fs_err::write(&original, config.1).unwrap();
    let recorded = sha256sum(&original);
    p.refused(
        &m,
        &[
            "disks[0].wheels[0]",
            file,
            "tinymodel/model/config.json",
            &format!("RECORD says {recorded}"),
            &found,
        ],
    );
}

/// The model's members and one more.
fn members_and(name: &str, data: &[u8], mode: u32) -> Vec<Member> {
    let mut members = model_members();
    members.push((name.to_owned(), data.to_vec(), mode));
    members
}

/// Writes `members` as the wheel `tinymodel-0.1.0-py3-none-any.{kind}.whl` (with a RECORD
/// if `record`, leaving the `unrecorded` members out of it) and checks that a build taking
/// [`TAKE`] from it is refused, naming the wheel's field, its file and each of `needles`.
fn refused_wheel_with(
    kind: &str,
    members: &[Member],
    record: bool,
    unrecorded: &[&str],
    needles: &[&str],
) {
    let p = Project::new();
    let file = format!("tinymodel-0.1.0-py3-none-any.{kind}.whl");
    write_wheel(&p.path().join(&file), members, record, unrecorded);
    let m = bad_wheel_manifest(&p, &file, Some(TAKE));
    p.refused(&m, &[&["disks[0].wheels[0]", &file], needles].concat());
}

/// [`refused_wheel_with`] a complete RECORD.
fn refused_wheel(kind: &str, members: &[Member], needles: &[&str]) {
    refused_wheel_with(kind, members, true, &[], needles);
}

#[test]
fn wheel_with_dotdot_member_is_refused() {
    let members = members_and("../escape", b"outside\n", 0o644);
    refused_wheel("escape", &members, &["../escape"]);
}

#[test]
fn wheel_with_symlink_member_is_refused() {
    let link = "tinymodel/model/link";
    let members = members_and(link, b"/etc/shadow", 0o120777);
    refused_wheel("symlink", &members, &[link, "symbolic link"]);
}

#[test]
fn wheel_with_duplicate_member_is_refused() {
    // Two members of one name (Python's zipfile warns and writes both), RECORD listing both
    // digests. Readers that keep the last copy (the `zip` crate, Python) see a member that
    // matches RECORD's last line; readers that keep the first see other bytes. The `zip`
    // crate's index hides the repetition, so the builder must ask for it.
    let second = b"{\"hidden_size\": 1024}\n";
    let members = members_and("tinymodel/model/config.json", second, 0o644);
    refused_wheel("duplicate", &members, &["member name twice"]);
}

#[test]
fn wheel_with_empty_name_component_is_refused() {
    // `model//config.json` is the same file as `model/config.json` once placed (and Python's
    // zipfile extracts both to one path), but RECORD and the build record would list two
    // members with two digests, only one of which is on the disk.
    let name = "tinymodel/model//config.json";
    let members = members_and(name, b"{\"hidden_size\": 1024}\n", 0o644);
    refused_wheel("emptycomponent", &members, &[name]);
}

#[test]
fn wheel_without_record_is_refused() {
    refused_wheel_with("norecord", &model_members(), false, &[], &["RECORD"]);
}

#[test]
fn wheel_member_missing_from_record_is_refused() {
    let member = "tinymodel/model/tokenizer/vocab.txt";
    let needles = [member, "RECORD"];
    refused_wheel_with("unrecorded", &model_members(), true, &[member], &needles);
}

#[test]
fn take_that_matches_nothing_is_refused() {
    let p = Project::new();
    // A prefix of a real directory name is not a directory: `take` selects whole directories.
    for take in ["tinymodel/nothing", "tinymodel/mod"] {
        let m = bad_wheel_manifest(&p, WHEEL, Some(take));
        p.refused(&m, &["disks[0].wheels[0]", WHEEL, take]);
    }
}

#[test]
fn wrong_wheel_pin_names_the_field_and_the_digest_found() {
    let p = Project::new();
    let found = sha256sum(&p.path().join(WHEEL));
    let wrong = Sha256Digest::of(b"not the wheel").to_hex();
    let spec = WheelSpec {
        file: WHEEL.to_owned(),
        sha256: wrong.clone(),
        take: Some(TAKE.to_owned()),
    };
    let m = p.manifest("bad.toml", &spec, "notes.txt");
    p.refused(&m, &["disks[0].wheels[0]", WHEEL, &found, &wrong]);
}

#[test]
fn disk_images_are_identical_under_different_conditions() {
    let p = Project::new();
    let manifest = p.manifest("m.toml", &p.good_wheel(), "notes.txt");
    let work = p.path().join("work");
    let conditions = [
        Conditions {
            tz: "UTC",
            lc_all: "C",
            umask: "022",
            tmpdir: work.join("tmp-a"),
            cwd: work.join("cwd-a"),
        },
        Conditions {
            tz: "Pacific/Chatham",
            lc_all: "C.UTF-8",
            umask: "077",
            tmpdir: work.join("tmp-b/deeper"),
            cwd: work.join("cwd-b"),
        },
    ];
    let outs: Vec<PathBuf> = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let out = work.join(format!("out-{i}"));
            let o = run_builder(
                c,
                &[
                    "build",
                    manifest.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--quiet",
                ],
            );
            ok(&o, "enclave-builder build");
            out
        })
        .collect();
    for name in ["disk-model.img", "rootfs.img", "cmdline", "record.json"] {
        let (a, b) = (outs[0].join(name), outs[1].join(name));
        assert!(
            bytes_of(&a) == bytes_of(&b),
            "{name} differs between the builds: {} vs {}",
            sha256sum(&a),
            sha256sum(&b)
        );
    }
    // And the image is a real one: veritysetup accepts it with the record's values.
    let r = record(&outs[1]);
    let v = &disk(&r)["filesystem"]["verity"];
    let img = outs[1].join("disk-model.img");
    verity_verify(&img, v);
}

/// A second disk is the next device (`/dev/vdc`, `/dev/dm-2`), verifies with veritysetup from
/// the record and from the kernel's table, and leaves the first disk's image untouched.
#[test]
fn a_second_disk_gets_the_next_device_and_leaves_the_first_disk_alone() {
    let p = Project::new();
    let one = p.build(&p.manifest("one.toml", &p.good_wheel(), "notes.txt"), "one");
    fs_err::write(p.path().join("tokens.txt"), b"a\nb\nc\n").unwrap();
    let extra = format!(
        "\n[[disks]]\nname = \"tok-2\"\nmount = \"/models/tokens\"\n\n[[disks.files]]\npath = \"/tokens.txt\"\nsource = \"tokens.txt\"\nsha256 = \"{}\"\nmode = 0o444\n",
        sha256_file(&p.path().join("tokens.txt"))
    );
    let two = p.build(
        &p.manifest_with("two.toml", &p.good_wheel(), "notes.txt", &extra),
        "two",
    );
    assert_eq!(
        bytes_of(&one.join("disk-model.img")),
        bytes_of(&two.join("disk-model.img")),
        "adding a disk changed the first disk"
    );
    let r = record(&two);
    let disks = r["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 2);
    let d = &disks[1];
    assert_eq!(
        (&d["name"], &d["image"], &d["device"], &d["dm_device"]),
        (
            &json!("tok-2"),
            &json!("disk-tok-2.img"),
            &json!("/dev/vdc"),
            &json!("/dev/dm-2")
        )
    );
    let v = &d["filesystem"]["verity"];
    let img = two.join("disk-tok-2.img");
    verity_verify(&img, v);
    let cmdline = fs_err::read_to_string(two.join("cmdline")).unwrap();
    let table: Vec<&str> = dm_table(&cmdline, "tok-2", 2).split(' ').collect();
    assert_eq!((table[4], table[5]), ("/dev/vdc", "/dev/vdc"), "{table:?}");
    verity_verify_table(&img, &table);
    assert!(
        cmdline.contains(" enclave.require=/dev/dm-1,/dev/dm-2"),
        "{cmdline}"
    );
    assert!(
        cmdline.contains(" enclave.mount=/dev/dm-2,/models/tokens,erofs,ro"),
        "{cmdline}"
    );
    // The disk's one file, read back by fsck.erofs.
    let tmp = tempfile::tempdir().unwrap();
    let x = tmp.path().join("x");
    fsck_extract_preserving(&img, &x);
    let l = tree_listing(&x, true);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(bytes_of(&x.join("tokens.txt")), b"a\nb\nc\n");
    // run-qemu.sh attaches the disks in order after the root.
    let script = fs_err::read_to_string(two.join("run-qemu.sh")).unwrap();
    let (a, b) = (
        script
            .find("disk-model.img")
            .expect("disk-model.img in run-qemu.sh"),
        script
            .find("disk-tok-2.img")
            .expect("disk-tok-2.img in run-qemu.sh"),
    );
    assert!(script.find("rootfs.img").unwrap() < a && a < b, "{script}");
    snp_digest_checked(&two);
}

/// A wheel unpacked into the root image: fsck.erofs's extraction of rootfs.img equals GNU tar's
/// extraction of the layer plus Python's zipfile extraction of the wheel (and the empty mount
/// point of the data disk).
#[test]
fn rootfs_wheel_matches_tar_plus_zipfile() {
    let p = Project::new();
    let into = "/usr/lib/python3/dist-packages";
    let extra = format!(
        "\n[[rootfs.wheels]]\nwheel = \"{WHEEL}\"\nsha256 = \"{}\"\ninto = \"{into}\"\n",
        sha256_file(&p.path().join(WHEEL))
    );
    let out = p.build(
        &p.manifest_with("root-wheel.toml", &p.good_wheel(), "notes.txt", &extra),
        "out",
    );
    let tmp = tempfile::tempdir().unwrap();
    let extracted = tmp.path().join("extracted");
    fsck_extract_preserving(&out.join("rootfs.img"), &extracted);
    let reference = tmp.path().join("reference");
    fs_err::create_dir_all(&reference).unwrap();
    ok(
        &tool(
            "tar",
            &[
                "-xpf",
                p.path().join("base.tar").to_str().unwrap(),
                "-C",
                reference.to_str().unwrap(),
                "--numeric-owner",
            ],
        ),
        "tar -x base.tar",
    );
    python(
        &[
            "extract",
            p.path().join(WHEEL).to_str().unwrap(),
            reference
                .join(into.trim_start_matches('/'))
                .to_str()
                .unwrap(),
        ],
        "python3 zipfile extract",
    );
    fs_err::create_dir_all(reference.join(MOUNT.trim_start_matches('/'))).unwrap();
    assert_same_tree(&extracted, &reference);
    // The record's root wheel (no disk) lists every file member, RECORD included.
    let r = record(&out);
    let w = r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "wheel" && i.get("disk").is_none())
        .expect("the root wheel in the record");
    let files = w["files"].as_array().unwrap();
    assert_eq!(
        files.len(),
        model_members()
            .iter()
            .filter(|(n, _, _)| !n.ends_with('/'))
            .count()
            + 1
    );
    for f in files {
        let path = f["path"].as_str().unwrap();
        let on_disk = extracted.join(path.trim_start_matches('/'));
        assert_eq!(f["sha256"].as_str().unwrap(), sha256sum(&on_disk), "{path}");
    }
}

/// `check` compares the disk images too, and `verify` notices a record whose disk root hash
/// was changed (the command line and launch digest that depend on it stay as built).
#[test]
fn check_and_verify_cover_the_disk() {
    let p = Project::new();
    let manifest = p.manifest("m.toml", &p.good_wheel(), "notes.txt");
    let m = manifest.to_str().unwrap();
    let o = builder(&["check", m, "--json", "--quiet"]);
    ok(&o, "enclave-builder check");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["reproducible"], true, "{report}");
    assert!(
        report["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "disk-model.img"),
        "check did not compare disk-model.img: {report}"
    );

    let out = p.build(&manifest, "out");
    let rec = out.join("record.json");
    ok(
        &builder(&["verify", m, "--record", rec.to_str().unwrap(), "--quiet"]),
        "enclave-builder verify",
    );
    let mut r = record(&out);
    r["disks"][0]["filesystem"]["verity"]["root_hash"] = Sha256Digest::of(b"other").to_hex().into();
    let forged = p.path().join("forged.json");
    fs_err::write(&forged, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    let o = builder(&["verify", m, "--record", forged.to_str().unwrap(), "--quiet"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(4),
        "verify of a forged disk root hash:\n{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("$.disks[0].filesystem.verity.root_hash"),
        "{text}"
    );
}

#[test]
fn a_disk_file_over_a_wheel_member_is_refused() {
    let p = Project::new();
    // The wheel's config.json lands at INTO/config.json; a second input for that path would
    // silently replace it while the record still listed the wheel member's digest.
    let extra = format!(
        "\n[[disks.files]]\npath = \"{INTO}/config.json\"\nsource = \"notes.txt\"\nsha256 = \"{}\"\nmode = 0o644\n",
        sha256_file(&p.path().join("notes.txt"))
    );
    let m = p.manifest_with("collide.toml", &p.good_wheel(), "notes.txt", &extra);
    p.refused(
        &m,
        &[
            "disks[0].files[1]",
            &format!("{INTO}/config.json"),
            "disks[0].wheels[0]",
        ],
    );
}

#[test]
fn nested_mount_points_are_refused() {
    let p = Project::new();
    let extra = format!("\n[[disks]]\nname = \"inner\"\nmount = \"{MOUNT}/inner\"\n");
    let m = p.manifest_with("nested.toml", &p.good_wheel(), "notes.txt", &extra);
    p.refused(&m, &["disks[1].mount", MOUNT, "overlaps disks[0].mount"]);
}

#[test]
fn a_signed_wheel_is_unpacked_with_its_unlisted_signature() {
    let p = Project::new();
    // PEP 427: RECORD.jws signs RECORD and is not listed in it.
    let mut members = model_members();
    members.push((
        format!("{DIST_INFO}/RECORD.jws"),
        b"{\"signatures\": []}\n".to_vec(),
        0o644,
    ));
    let file = "tinymodel-0.1.0-py3-none-any.signed.whl";
    write_wheel(
        &p.path().join(file),
        &members,
        true,
        &[&format!("{DIST_INFO}/RECORD.jws")],
    );
    let spec = WheelSpec {
        file: file.to_owned(),
        sha256: sha256_file(&p.path().join(file)),
        take: None,
    };
    let out = p.build(&p.manifest("signed.toml", &spec, "notes.txt"), "signed-out");
    let r = record(&out);
    let wheel = r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "wheel")
        .unwrap();
    let paths: Vec<&str> = wheel["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&format!("{INTO}/{DIST_INFO}/RECORD.jws").as_str()),
        "{paths:?}"
    );
}

#[test]
fn two_manifest_entries_for_one_root_path_are_refused() {
    let p = Project::new();
    // Replacing a layer's file is what extra files are for; two manifest entries for one
    // path would leave the record listing a digest that is not in the image.
    let sha = sha256_file(&p.path().join("notes.txt"));
    let extra = format!(
        "\n[[rootfs.files]]\npath = \"/etc/notes\"\nsource = \"notes.txt\"\nsha256 = \"{sha}\"\nmode = 0o644\n\
         \n[[rootfs.files]]\npath = \"/etc//notes\"\nsource = \"notes.txt\"\nsha256 = \"{sha}\"\nmode = 0o600\n"
    );
    let m = p.manifest_with("twice.toml", &p.good_wheel(), "notes.txt", &extra);
    p.refused(
        &m,
        &[
            "rootfs.files[1]",
            "/etc//notes",
            "rootfs.files[0]",
            "root file system",
        ],
    );
    // One extra file over the layer's /etc/hostname is fine.
    let over = format!(
        "\n[[rootfs.files]]\npath = \"/etc/hostname\"\nsource = \"notes.txt\"\nsha256 = \"{sha}\"\nmode = 0o644\n"
    );
    p.build(
        &p.manifest_with("over.toml", &p.good_wheel(), "notes.txt", &over),
        "over-out",
    );
}

/// A data-disk file is read once: its pin is checked as the disk image is written, not by a
/// separate pass first. Bytes that are not the pinned ones are still refused (exit 3, the
/// field and both digests named, nothing left behind), the same length or not.
#[test]
fn a_disk_file_that_is_not_the_pinned_one_is_refused() {
    let p = Project::new();
    let note = p.path().join("notes.txt");
    let pinned = sha256_file(&note);
    let m = p.manifest_with("wrong-pin.toml", &p.good_wheel(), "notes.txt", "");
    let original = fs_err::read(&note).unwrap();
    let same_length: Vec<u8> = original.iter().map(|b| b ^ 0x20).collect();
    for (case, bytes) in [
        ("same length", same_length),
        ("longer", [&original[..], b"!"].concat()),
    ] {
        fs_err::write(&note, &bytes).unwrap();
        let found = sha256_file(&note);
        assert_ne!(found, pinned, "{case}");
        p.refused(
            &m,
            &[
                "disks[0].files[0] (notes.txt): sha256 mismatch",
                &pinned,
                &found,
            ],
        );
    }
}

/// Writes a weights file of `mib` MiB (each MiB different) to `path`; returns its sha256.
fn weights_file(path: &Path, mib: u32) -> String {
    use sha2::Digest as _;
    use std::io::Write as _;
    let mut piece: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut hash = sha2::Sha256::new();
    let mut file = fs_err::File::create(path).unwrap();
    for i in 0..mib {
        piece[0] = i as u8;
        file.write_all(&piece).unwrap();
        hash.update(&piece);
    }
    hex::encode(hash.finalize())
}

/// Peak RSS in KiB of `enclave-builder build MANIFEST --out OUT --quiet`, as the kernel counts
/// it: `ru_maxrss` of the only child of a Python process (`getrusage(RUSAGE_CHILDREN)`).
fn build_peak_rss_kib(manifest: &Path, out: &Path) -> u64 {
    const SCRIPT: &str = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(r.returncode)\n";
    let bin = builder_bin();
    let mut args = vec!["-c", SCRIPT, bin.to_str().unwrap()];
    args.extend(build_quiet_args(manifest, out));
    let o = tool("python3", &args);
    ok(&o, "enclave-builder build, under Python's getrusage");
    String::from_utf8(o.stdout).unwrap().trim().parse().unwrap()
}

/// Issue 13's flat memory: a gigabyte more of weights on a data disk costs its build no more
/// memory (the dm-verity area is written as it is built: stop 15's build, 2 MiB more here;
/// stop 14's, which held the area, 1/64 of the image, 14 MiB more).
#[test]
fn a_data_disk_build_s_peak_memory_does_not_grow_with_its_weights() {
    let p = Project::new();
    let peak = |mib: u32| {
        let name = format!("w{mib}.bin");
        let sha = weights_file(&p.path().join(&name), mib);
        let extra = format!(
            "\n[[disks]]\nname = \"w\"\nmount = \"/models/w\"\n\n[[disks.files]]\npath = \"/w.bin\"\nsource = \"{name}\"\nsha256 = \"{sha}\"\nmode = 0o444\n"
        );
        let manifest = p.manifest_with(
            &format!("w{mib}.toml"),
            &p.good_wheel(),
            "notes.txt",
            &extra,
        );
        let out = p.path().join(format!("out-{mib}"));
        let kib = build_peak_rss_kib(&manifest, &out);
        // The weights are in the disk whole.
        let disk = fs_err::metadata(out.join("disk-w.img")).unwrap().len();
        assert!(disk > u64::from(mib) << 20, "{disk} bytes for {mib} MiB");
        fs_err::remove_dir_all(&out).unwrap();
        fs_err::remove_file(p.path().join(&name)).unwrap();
        kib
    };
    let small = peak(128);
    let large = peak(1152);
    assert!(
        large < small + 8 * 1024,
        "peak RSS {small} KiB with 128 MiB of weights, {large} KiB with 1152 MiB"
    );
}

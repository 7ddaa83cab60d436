//! `check` (two builds under variations, differences located by format) and `verify` (a
//! rebuild compared with a published record), run as the real binary.
//!
//! The locations `check` reports are cross-checked with independent tools: `cmp` on the
//! artifacts, `fsck.erofs --extract` + `cmp` for a file's first differing byte, `dump.erofs`
//! for an inode's mode, `veritysetup dump` for the verity salt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;

use crate::util::{builder_bin, demo_manifest, ok, repo, run_builder, tool, Conditions};

/// The injected file's path inside the image (builder::inject::INJECT_PATH).
const INJECTED: &str = "/etc/enclave-builder-inject";

fn check(inject: Option<&str>, keep: &Path, json: bool) -> Output {
    let mut cmd = Command::new(injecting_builder_bin());
    cmd.args([
        "check",
        demo_manifest().to_str().unwrap(),
        "--quiet",
        "--keep",
    ])
    .arg(keep);
    if json {
        cmd.arg("--json");
    }
    match inject {
        Some(i) => cmd.env("ENCLAVE_BUILDER_TEST_INJECT", i),
        None => cmd.env_remove("ENCLAVE_BUILDER_TEST_INJECT"),
    };
    cmd.output().unwrap()
}

/// [`builder_bin`], asserting it was built with the `test-inject` feature (it refuses an
/// unknown injection; a binary without the feature ignores the variable).
fn injecting_builder_bin() -> PathBuf {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let manifest = tiny_manifest(tmp.path());
        let o = build_with(
            &builder_bin(),
            &manifest,
            &tmp.path().join("out"),
            Some("no-such"),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("expected timestamp"),
            "{} was built without the test-inject feature: build it with \
             `cargo build -p enclave-builder --features test-inject` (scripts/test.sh does)\n{err}",
            builder_bin().display()
        );
    });
    builder_bin()
}

/// A manifest with no layers and stand-in boot files: a build of it takes a fraction of a
/// second.
fn tiny_manifest(dir: &Path) -> PathBuf {
    fs_err::write(dir.join("vmlinuz"), b"not really a kernel").unwrap();
    fs_err::write(dir.join("fw.fd"), b"not really firmware").unwrap();
    let k = measurements::Sha256Digest::of(b"not really a kernel");
    let f = measurements::Sha256Digest::of(b"not really firmware");
    let text = format!(
        "schema = 1\n[image]\nname = \"t\"\nversion = \"1\"\nsource_date_epoch = 0\n\
         [rootfs]\nlayers = []\n[boot]\nkernel = {{ path = \"vmlinuz\", sha256 = \"{k}\" }}\n\
         firmware = {{ path = \"fw.fd\", sha256 = \"{f}\" }}\n"
    );
    let manifest = dir.join("m.toml");
    fs_err::write(&manifest, text).unwrap();
    manifest
}

/// Runs `bin build MANIFEST --out OUT --quiet` with `ENCLAVE_BUILDER_TEST_INJECT` set to
/// `inject` (or unset).
fn build_with(bin: &Path, manifest: &Path, out: &Path, inject: Option<&str>) -> Output {
    let mut cmd = Command::new(bin);
    cmd.arg("build")
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .arg("--quiet");
    match inject {
        Some(i) => cmd.env("ENCLAVE_BUILDER_TEST_INJECT", i),
        None => cmd.env_remove("ENCLAVE_BUILDER_TEST_INJECT"),
    };
    cmd.output().unwrap()
}

/// STYLE 16, test seams never ship: a binary built without the `test-inject` feature (the
/// release configuration, compiled here into its own target directory) builds the same bytes
/// with `ENCLAVE_BUILDER_TEST_INJECT=timestamp` as without, and accepts any value; the test
/// binary (with the feature) puts the clock into the image under the same variable.
#[test]
fn a_binary_built_without_the_test_feature_ignores_the_injection() {
    let target = repo().join("target/plain-builder");
    let plain = target.join("debug/enclave-builder");
    // scripts/test.sh builds the plain binary in the shared target directory and copies it
    // here before it builds the test one; otherwise it is compiled in a target directory of
    // its own (a cold build of every dependency).
    if !plain.exists() {
        let o = Command::new(env!("CARGO"))
            .args([
                "build",
                "--locked",
                "--quiet",
                "-p",
                "enclave-builder",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(repo())
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap();
        ok(&o, "building enclave-builder without features");
    }
    let tmp = tempfile::tempdir().unwrap();
    let manifest = tiny_manifest(tmp.path());
    let record = |bin: &Path, name: &str, inject: Option<&str>| -> Value {
        let out = tmp.path().join(name);
        let o = build_with(bin, &manifest, &out, inject);
        ok(&o, name);
        serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap()
    };
    let clean = record(&plain, "plain", None);
    let injected = record(&plain, "plain-timestamp", Some("timestamp"));
    assert_eq!(
        clean, injected,
        "a binary without the test-inject feature changed its output under the injection"
    );
    // Any value is ignored (a test build refuses unknown ones).
    record(&plain, "plain-unknown", Some("no-such"));
    // The control: the test binary does inject, so the comparison above can fail.
    let test_bin = record(&injecting_builder_bin(), "test-bin", Some("timestamp"));
    assert_ne!(
        clean["rootfs"]["verity"]["root_hash"], test_bin["rootfs"]["verity"]["root_hash"],
        "the test binary did not inject: the control is broken"
    );
}

/// The two output directories `check --keep DIR` leaves.
fn outputs(keep: &Path) -> (PathBuf, PathBuf) {
    (keep.join("a/out"), keep.join("b/a much/longer path/output"))
}

/// Removes what changes from run to run: digests and other long hex strings, the thread count
/// (machine-dependent), and offsets the injection makes random (`random_offsets`). With
/// deterministic injections (env-file, umask-mode) the offsets are kept: the two builds'
/// contents, and so their digests, are fixed.
fn redact(report: &str, random_offsets: bool) -> String {
    let mut out = String::new();
    for line in report.lines() {
        let mut l = String::new();
        let mut hex = String::new();
        for c in line.chars().chain(['\n']) {
            if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
                hex.push(c);
                continue;
            }
            l.push_str(if hex.len() >= 16 { "[hex]" } else { &hex });
            hex.clear();
            l.push(c);
        }
        if let Some(i) = l.find("RAYON_NUM_THREADS=") {
            if l.contains("build B") {
                let end = l[i..].find(',').map_or(l.len(), |e| i + e);
                l.replace_range(i..end, "RAYON_NUM_THREADS=[cores, at least 4]");
            }
        }
        // Random content makes every offset into it (and into the digests derived from it)
        // random too: the first differing hex digit of two digests moves with chance 1/16.
        if random_offsets {
            // A section of the UKI: its first differing byte and how many differ, e.g.
            // `section .cmdline (PE, +203): bytes (63 differ)`, move with the digests.
            for marker in ["(PE, +", "bytes ("] {
                if let Some(i) = l.find(marker).map(|i| i + marker.len()) {
                    let digits = l[i..].chars().take_while(char::is_ascii_digit).count();
                    if digits > 0 {
                        l.replace_range(i..i + digits, "[random]");
                    }
                }
            }
            for marker in [" at offset ", "(char "] {
                let mut from = 0;
                while let Some(i) = l[from..].find(marker).map(|i| from + i + marker.len()) {
                    let digits = l[i..].chars().take_while(char::is_ascii_digit).count();
                    l.replace_range(i..i + digits, if digits > 0 { "[random]" } else { "" });
                    from = i;
                }
            }
            // The text around a random offset is random as well (how far back the digests
            // agree): keep that there is context, not what it is.
            if l.contains("[random]") {
                if let Some(i) = l.find("(A ") {
                    l.replace_range(i..l.len() - 1, "(A [context], B [context])");
                }
            }
        }
        out.push_str(&l);
    }
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn check_passes_on_the_demo_and_cmp_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("keep");
    let start = Instant::now();
    let o = check(None, &keep, true);
    let took = start.elapsed();
    ok(&o, "check on the demo manifest");
    // A CI gate must stay cheap: two demo builds take about a second here.
    assert!(
        took.as_secs() < 120,
        "check on the demo manifest took {took:?}"
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["reproducible"], true);
    assert_eq!(
        report["artifacts"],
        serde_json::json!([
            "OVMF.fd",
            "disk-model.img",
            "initrd.img",
            "rootfs.img",
            "run-qemu.sh",
            "uki-qemu-swtpm.efi",
            "vmlinuz",
            "cmdline",
            "record.json"
        ])
    );
    assert_eq!(report["differences"], serde_json::json!([]));
    // Every variation is on by default.
    assert_eq!(report["variations"].as_array().unwrap().len(), 9);
    // Independently: cmp says the kept outputs are identical, and they really were built
    // under different conditions (different directories).
    let (a, b) = outputs(&keep);
    for name in [
        "rootfs.img",
        "disk-model.img",
        "vmlinuz",
        "cmdline",
        "record.json",
    ] {
        let c = tool(
            "cmp",
            &[
                a.join(name).to_str().unwrap(),
                b.join(name).to_str().unwrap(),
            ],
        );
        assert!(c.status.success(), "cmp {name}: {}", stdout(&c));
    }
    insta::assert_snapshot!(
        "check_demo_report",
        redact(&stdout(&check(None, &tmp.path().join("k2"), false)), false)
    );
}

#[test]
fn check_refuses_a_non_empty_keep_dir() {
    let tmp = tempfile::tempdir().unwrap();
    fs_err::write(tmp.path().join("x"), b"").unwrap();
    let o = check(None, tmp.path(), false);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be empty"));
}

/// Runs `check` under an injection: exit 4, and the report's first difference is in
/// `rootfs.img` at `location` with `field`. Returns the JSON report and the keep dir.
fn injected(inject: &str, location: &str, field: &str) -> (Value, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let o = check(Some(inject), &tmp.path().join("keep"), true);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{inject}: check must fail as not reproducible\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["reproducible"], false);
    let first = &report["differences"][0];
    assert_eq!(first["artifact"], "rootfs.img", "{inject}: {first}");
    assert_eq!(first["location"], location, "{inject}: {first}");
    assert_eq!(first["field"], field, "{inject}: {first}");
    // The consequences are named too: the record's digests and the cmdline's root hash.
    let locations: Vec<&str> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["location"].as_str().unwrap())
        .collect();
    assert!(
        locations.contains(&"$.rootfs.verity.root_hash"),
        "{locations:?}"
    );
    assert!(locations.contains(&"$.outputs[1].sha256"), "{locations:?}");
    (report, tmp)
}

/// The human report for an injection, redacted, for a snapshot.
fn human(inject: &str, random_offsets: bool) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let o = check(Some(inject), &tmp.path().join("keep"), false);
    assert_eq!(o.status.code(), Some(4));
    redact(&stdout(&o), random_offsets)
}

/// Extracts the injected file from both kept images with fsck.erofs and returns `cmp`'s
/// first differing byte, 0-based.
fn cmp_injected_file(keep: &Path) -> u64 {
    let (a, b) = outputs(keep);
    let mut files = Vec::new();
    for (side, out) in [("a", a), ("b", b)] {
        let dir = keep.join(format!("extract-{side}"));
        let o = tool(
            "fsck.erofs",
            &[
                &format!("--extract={}", dir.display()),
                out.join("rootfs.img").to_str().unwrap(),
            ],
        );
        ok(&o, "fsck.erofs --extract");
        files.push(dir.join(INJECTED.trim_start_matches('/')));
    }
    let c = tool(
        "cmp",
        &[files[0].to_str().unwrap(), files[1].to_str().unwrap()],
    );
    // "FILE1 FILE2 differ: byte N, line L" (N 1-based), or "EOF on FILE after byte N".
    let text = format!("{}{}", stdout(&c), String::from_utf8_lossy(&c.stderr));
    let n: u64 = text
        .split("byte ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cmp output: {text}"));
    if text.contains("EOF") {
        n
    } else {
        n - 1
    }
}

/// Injects `kind` into the file `keep`: check's first (content) difference is at the offset
/// cmp finds, and the human report matches the snapshot `snapshot`.
fn assert_locates_in_keep(kind: &str, snapshot: &str) {
    let (report, tmp) = injected(kind, INJECTED, "content");
    let offset = report["differences"][0]["offset"].as_u64().unwrap();
    assert_eq!(
        cmp_injected_file(&tmp.path().join("keep")),
        offset,
        "{kind}"
    );
    insta::assert_snapshot!(snapshot, human(kind, true));
}

#[test]
fn check_locates_a_wall_clock_timestamp() {
    assert_locates_in_keep("timestamp", "check_inject_timestamp");
}

#[test]
fn check_locates_a_read_dir_order_listing() {
    assert_locates_in_keep("unsorted-dir", "check_inject_unsorted_dir");
}

#[test]
fn check_locates_an_environment_variable_in_a_file() {
    // "built with TZ=UTC\n" vs "built with TZ=Pacific/Chatham\n": sizes 18 and 30, first
    // difference at byte 14.
    let (report, tmp) = injected("env-file", INJECTED, "size");
    assert_eq!(report["differences"][0]["a"], "18");
    assert_eq!(report["differences"][0]["b"], "30");
    let content = &report["differences"][1];
    assert_eq!(content["location"], INJECTED);
    assert_eq!(content["field"], "content");
    assert_eq!(content["offset"], 14);
    assert_eq!(cmp_injected_file(&tmp.path().join("keep")), 14);
    insta::assert_snapshot!("check_inject_env_file", human("env-file", false));
}

#[test]
fn check_locates_a_mode_from_the_umask() {
    let (report, tmp) = injected("umask-mode", INJECTED, "mode");
    // umask 022 vs 077 on a file created 0666.
    assert_eq!(report["differences"][0]["a"], "100644");
    assert_eq!(report["differences"][0]["b"], "100600");
    // dump.erofs (erofs-utils) agrees.
    let (a, b) = outputs(&tmp.path().join("keep"));
    for (out, mode) in [(a, "0644"), (b, "0600")] {
        let o = tool(
            "dump.erofs",
            &[
                &format!("--path={INJECTED}"),
                out.join("rootfs.img").to_str().unwrap(),
            ],
        );
        ok(&o, "dump.erofs --path");
        let text = stdout(&o);
        assert!(
            text.contains(mode),
            "dump.erofs shows no mode {mode}:\n{text}"
        );
    }
    insta::assert_snapshot!("check_inject_umask_mode", human("umask-mode", false));
}

#[test]
fn check_locates_a_random_verity_salt() {
    let (report, tmp) = injected("random-salt", "dm-verity hash area", "superblock salt");
    // veritysetup reads the same salts from the kept images.
    let (a, b) = outputs(&tmp.path().join("keep"));
    for (out, side) in [(a, "a"), (b, "b")] {
        let record: Value =
            serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap();
        let offset = record["rootfs"]["verity"]["hash_offset"].as_u64().unwrap();
        let img = out.join("rootfs.img");
        let o = tool(
            "veritysetup",
            &[
                "dump",
                &format!("--hash-offset={offset}"),
                img.to_str().unwrap(),
            ],
        );
        ok(&o, "veritysetup dump");
        let salt = stdout(&o)
            .lines()
            .find_map(|l| l.strip_prefix("Salt:").map(|s| s.trim().to_owned()))
            .expect("veritysetup prints a Salt: line");
        assert_eq!(report["differences"][0][side], salt);
    }
    let second = &report["differences"][1];
    // The hash area starts where the file system ends (the record's hash_offset).
    let a = demo_hash_offset();
    assert_eq!(
        second["location"],
        format!("dm-verity hash area (image offset {a}), superblock block")
    );
    insta::assert_snapshot!("check_inject_random_salt", human("random-salt", true));
}

#[test]
fn check_without_variations_still_compares() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(builder_bin())
        .args([
            "check",
            demo_manifest().to_str().unwrap(),
            "-q",
            "--vary",
            "tz,umask",
            "--keep",
        ])
        .arg(tmp.path().join("k"))
        .output()
        .unwrap();
    ok(&o, "check --vary tz,umask");
    assert!(
        stdout(&o).starts_with("variations: tz, umask\n"),
        "{}",
        stdout(&o)
    );
    let o = Command::new(builder_bin())
        .args(["check", demo_manifest().to_str().unwrap(), "--vary", "moon"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown variation is a usage error"
    );
}

// ---- verify ----

/// A record from a build made elsewhere under other conditions (cwd, TZ, locale, umask,
/// TMPDIR), written to `dir/record.json`, parsed.
fn published(dir: &Path) -> Value {
    let c = Conditions {
        tz: "America/St_Johns",
        lc_all: "C.UTF-8",
        umask: "027",
        tmpdir: dir.join("tmp"),
        cwd: dir.join("cwd"),
    };
    let out = dir.join("published");
    let o = run_builder(
        &c,
        &[
            "build",
            demo_manifest().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
    );
    ok(&o, "the publisher's build");
    serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap()
}

fn verify(record: &Value, dir: &Path, json: bool) -> Output {
    let path = dir.join("to-verify.json");
    fs_err::write(&path, serde_json::to_vec_pretty(record).unwrap()).unwrap();
    let mut cmd = Command::new(builder_bin());
    cmd.args([
        "verify",
        demo_manifest().to_str().unwrap(),
        "-q",
        "--record",
    ])
    .arg(&path)
    .current_dir(repo())
    .env("TMPDIR", dir)
    .env("TZ", "Asia/Kathmandu");
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

/// Flips the last hex digit of the string at `pointer`.
fn alter(record: &Value, pointer: &str) -> Value {
    let mut r = record.clone();
    let v = r.pointer_mut(pointer).unwrap();
    let mut s = v.as_str().unwrap().to_owned();
    let last = s.pop().unwrap();
    s.push(if last == '0' { '1' } else { '0' });
    *v = Value::String(s);
    r
}

#[test]
fn verify_passes_against_a_record_built_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let record = published(tmp.path());
    let o = verify(&record, tmp.path(), false);
    ok(&o, "verify");
    assert_eq!(
        stdout(&o),
        "verified: the rebuild matches the published record\n"
    );
}

#[test]
fn verify_names_the_altered_field_and_exits_by_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let record = published(tmp.path());
    let cases = [
        ("/inputs/1/sha256", "$.inputs[1].sha256", 5, "inputs"),
        ("/outputs/1/sha256", "$.outputs[1].sha256", 4, "artifacts"),
        (
            "/measurements/0/platform/launch_digest",
            "$.measurements[0].platform.launch_digest",
            6,
            "measurements",
        ),
    ];
    let mut human = String::new();
    for (pointer, path, code, part) in cases {
        let altered = alter(&record, pointer);
        let o = verify(&altered, tmp.path(), true);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{path}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["exit_code"], code);
        let m = &report["mismatches"];
        assert_eq!(m.as_array().unwrap().len(), 1, "{m}");
        assert_eq!(m[0]["path"], path);
        assert_eq!(m[0]["part"], part);
        let show = |v: &Value| v.to_string();
        assert_eq!(m[0]["published"], show(altered.pointer(pointer).unwrap()));
        assert_eq!(m[0]["rebuilt"], show(record.pointer(pointer).unwrap()));
        let o = verify(&altered, tmp.path(), false);
        human.push_str(&format!(
            "== {pointer} (exit {:?})\n{}",
            o.status.code(),
            stdout(&o)
        ));
    }
    insta::assert_snapshot!("verify_altered_fields", human);
}

// ---- byte differences located by section ----

/// Flips the byte at `at` in a copy of `bytes` and returns what `check` reports.
fn flip_and_locate(name: &str, bytes: &[u8], at: u64) -> String {
    let mut copy = bytes.to_vec();
    copy[at as usize] ^= 0xff;
    let d = builder::diff::diff_file(name, bytes, &copy);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].offset, Some(at));
    assert_eq!(d[0].field, "bytes (1 differ)");
    d[0].location.clone()
}

#[test]
fn pe_sections_of_the_demo_kernel_match_objdump() {
    demo_manifest();
    let path = repo().join("manifests/demo-inputs/vmlinuz");
    let bytes = fs_err::read(&path).unwrap();
    let o = tool("objdump", &["-h", path.to_str().unwrap()]);
    ok(&o, "objdump -h");
    // "  2 .text  00d81000  VMA  LMA  00005000  2**4": name, size, file offset.
    let mut seen = 0;
    for line in stdout(&o).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 7 || f[0].parse::<u32>().is_err() {
            continue;
        }
        let size = u64::from_str_radix(f[2], 16).unwrap();
        let off = u64::from_str_radix(f[5], 16).unwrap();
        if size == 0 {
            continue;
        }
        let at = off + size / 2;
        assert_eq!(
            flip_and_locate("vmlinuz", &bytes, at),
            format!("section {} (PE, +{})", f[1], size / 2)
        );
        seen += 1;
    }
    assert!(seen >= 3, "objdump listed {seen} sections:\n{}", stdout(&o));
    // The PE header is in no section.
    assert_eq!(flip_and_locate("vmlinuz", &bytes, 0x40), "(bytes)");
}

#[test]
fn elf_sections_match_readelf() {
    // A small system ELF (the builder's own debug binary is slow to copy per section).
    let path = PathBuf::from("/bin/true");
    let bytes = fs_err::read(&path).unwrap();
    let o = tool("readelf", &["-S", "-W", path.to_str().unwrap()]);
    ok(&o, "readelf -S -W");
    // "  [14] .text  PROGBITS  0000000000012340 012340 0a1b2c 00  AX  0   0 16"
    let mut seen = 0;
    for line in stdout(&o).lines() {
        let Some(rest) = line.trim_start().strip_prefix('[') else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(']') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 5 || f[1] == "NOBITS" || f[1] == "NULL" {
            continue;
        }
        let (Ok(off), Ok(size)) = (u64::from_str_radix(f[3], 16), u64::from_str_radix(f[4], 16))
        else {
            continue;
        };
        if size == 0 {
            continue;
        }
        let at = off + size / 2;
        let got = flip_and_locate("true", &bytes, at);
        // Flipping a byte of the section-name table still names the section by the old table.
        assert_eq!(got, format!("section {} (ELF, +{})", f[0], size / 2));
        seen += 1;
    }
    assert!(seen >= 10, "readelf listed {seen} sections");
}

#[test]
fn verity_area_differences_name_the_tree_level() {
    let out = crate::util::demo_build();
    let img = fs_err::read(out.join("rootfs.img")).unwrap();
    let record: Value =
        serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap();
    let base = record["rootfs"]["verity"]["hash_offset"].as_u64().unwrap();
    let data_blocks = record["rootfs"]["verity"]["data_blocks"].as_u64().unwrap();
    // The dm-verity format (cryptsetup docs/on-disk-format): a 4096-byte superblock block,
    // then the levels top first; with 4096-byte blocks a hash block holds 128 sha256 digests.
    let leaves = data_blocks.div_ceil(128);
    assert!(leaves > 1 && leaves <= 128, "the demo has a two-level tree");
    // Flips one byte of the area; returns the reported locations, checking the offset.
    let loc = |area_offset: u64| -> Vec<String> {
        let mut copy = img.clone();
        copy[(base + area_offset) as usize] ^= 0xff;
        let d = builder::diff::diff_file("rootfs.img", &img, &copy);
        let last = d.last().unwrap();
        assert_eq!(
            (last.field.as_str(), last.offset),
            ("bytes", Some(area_offset))
        );
        d.iter()
            .map(|d| format!("{}: {}", d.location, d.field))
            .collect()
    };
    let prefix = format!("dm-verity hash area (image offset {base})");
    // Byte 300 is superblock padding past the 32-byte salt; byte 72 is data_blocks.
    assert_eq!(loc(300), [format!("{prefix}, superblock block: bytes")]);
    assert_eq!(
        loc(72),
        [
            "dm-verity hash area: superblock data_blocks".to_owned(),
            format!("{prefix}, superblock block: bytes")
        ]
    );
    let level = |l: u64| [format!("{prefix}, level {l} of 2 (0 = leaves): bytes")];
    assert_eq!(loc(4096 + 5), level(1));
    assert_eq!(loc(8192 + 10), level(0));
    assert_eq!(loc(8192 + leaves * 4096 - 1), level(0));
}

/// The demo image's verity hash offset (its file-system size), from the demo build's record.
fn demo_hash_offset() -> u64 {
    let out = crate::util::demo_build();
    let r: Value = serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap();
    r["rootfs"]["verity"]["hash_offset"].as_u64().unwrap()
}

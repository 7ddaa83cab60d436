//! Releases: `keygen`, `sign`, `verify --attest`, `release check` and `release diff` on a
//! small image (one layer, the systemd EFI stub as a PE "kernel", one data disk, an SNP and a
//! TDX profile).
//!
//! The signatures are checked by an independent DSSE verifier written from the specifications
//! with Python's `cryptography` (`tests/vectors/dsse_verify.py`), the subjects by `sha256sum`.
//! Each policy failure (record or file altered after signing, untrusted or corrupted
//! signature, too few trusted rebuilders, an untrusted rebuilder) is made for real and must
//! be reported by name with exit code 9.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use measurements::Sha256Digest;
use serde_json::Value;

use crate::util::{
    build_ok, builder, builder_bin, diff_statuses, keygen, manifest_head, ok, project_dir, tool,
    write_in, EFI_STUB, OVMF, OVMF_SNP, OVMF_TDX,
};

const EXIT_INPUT_REFUSED: i32 = 3;
const EXIT_INPUTS_DIFFER: i32 = 5;
const EXIT_RELEASE_REJECTED: i32 = 9;

/// Fixture files (pins from fixtures/SHA256SUMS): boot firmware, SNP and TDX firmware, and
/// the systemd EFI stub, a small PE file standing in for the kernel (TDX RTMR1 hashes it as
/// a PE image).
const FIXTURES: [(&str, &str); 4] = [OVMF, OVMF_SNP, OVMF_TDX, EFI_STUB];

/// A scratch project: the layer, fixtures and two versions of the data disk's file.
struct Project {
    dir: tempfile::TempDir,
}

fn sha256_file(p: &Path) -> String {
    Sha256Digest::of(&fs_err::read(p).unwrap()).to_hex()
}

fn name_of(f: &str) -> &str {
    Path::new(f).file_name().unwrap().to_str().unwrap()
}

impl Project {
    fn new() -> Project {
        let dir = project_dir(b"release\n", |_| {});
        let p = dir.path();
        let fixtures = reproducibility_tests::demo::fixtures_dir();
        for (f, sha) in FIXTURES {
            fs_err::copy(fixtures.join(f), p.join(name_of(f))).unwrap();
            assert_eq!(sha256_file(&p.join(name_of(f))), sha, "fixture {f}");
        }
        fs_err::write(p.join("notes-v1.txt"), b"data disk, version 1\n").unwrap();
        fs_err::write(p.join("notes-v2.txt"), b"data disk, version 2\n").unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A manifest whose data disk holds `note` as /notes.txt.
    fn manifest(&self, name: &str, note: &str) -> PathBuf {
        let p = self.path();
        let pin = |f: &str| sha256_file(&p.join(f));
        let fw = |i: usize| {
            let (f, sha) = FIXTURES[i];
            format!("{{ path = \"{}\", sha256 = \"{sha}\" }}", name_of(f))
        };
        let text = format!(
            r#"{head}
[boot]
kernel = {kernel}
firmware = {boot_fw}
cmdline = "console=ttyS0"

[[disks]]
name = "data"
mount = "/data"

[[disks.files]]
path = "/notes.txt"
source = "{note}"
sha256 = "{note_sha}"
mode = 0o644

[[profiles]]
name = "snp"
platform = "snp"
firmware = {snp_fw}
vcpus = 2
vcpu_type = "EPYC-Milan"
guest_features = 0x1

[[profiles]]
name = "tdx"
platform = "tdx"
firmware = {tdx_fw}
"#,
            head = manifest_head("release-test", "base.tar", &pin("base.tar")),
            kernel = fw(3),
            boot_fw = fw(0),
            snp_fw = fw(1),
            tdx_fw = fw(2),
            note_sha = pin(note),
        );
        write_in(p, name, &text)
    }

    fn build(&self, manifest: &Path, out: &str) -> PathBuf {
        build_ok(manifest, self.path().join(out))
    }

    /// `keygen --out DIR/NAME [--algorithm ALG]`; returns the key path and the printed
    /// fingerprint.
    fn keygen(&self, name: &str, algorithm: &str) -> (PathBuf, String) {
        keygen(builder, self.path().join(name), algorithm)
    }

    /// Copies a release directory (to alter the copy).
    fn copy(&self, dir: &Path, name: &str) -> PathBuf {
        let to = self.path().join(name);
        ok(
            &tool("cp", &["-a", dir.to_str().unwrap(), to.to_str().unwrap()]),
            "cp -a",
        );
        to
    }

    /// Writes a policy file and runs `release check DIR --policy P` and then `extra`.
    fn run_check(&self, dir: &Path, policy: &str, extra: &[&str]) -> Output {
        let p = self.path().join("policy.toml");
        fs_err::write(&p, policy).unwrap();
        let (dir, p) = (dir.to_str().unwrap(), p.to_str().unwrap());
        builder(&[&["release", "check", dir, "--policy", p], extra].concat())
    }

    /// [`Project::run_check`] without more arguments; returns the exit code and the output.
    fn check(&self, dir: &Path, policy: &str) -> (Option<i32>, String) {
        let o = self.run_check(dir, policy, &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), text)
    }
}

/// The independent verifier: returns the decoded statement, or the failure message.
pub(crate) fn python_verify(envelope: &Path, public_key: &Path) -> Result<(String, Value), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/dsse_verify.py");
    let o = tool(
        "python3",
        &[
            script.to_str().unwrap(),
            envelope.to_str().unwrap(),
            public_key.to_str().unwrap(),
        ],
    );
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    Ok((
        v["fingerprint"].as_str().unwrap().to_owned(),
        v["statement"].clone(),
    ))
}

/// `sha256sum` of every file of a release directory but envelopes and keys.
pub(crate) fn sha256sum_dir(dir: &Path) -> BTreeMap<String, String> {
    let mut names: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".intoto.json") && !n.ends_with(".pub"))
        .collect();
    names.sort();
    let mut args = vec!["--"];
    args.extend(names.iter().map(String::as_str));
    let o = Command::new("sha256sum")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("sha256sum is not runnable");
    ok(&o, "sha256sum");
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (d, n) = l.split_once("  ").unwrap();
            (n.to_owned(), d.to_owned())
        })
        .collect()
}

pub(crate) fn subjects(statement: &Value) -> BTreeMap<String, String> {
    statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["digest"]["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn sign(dir: &Path, key: &Path) -> Output {
    builder(&[
        "sign",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ])
}

/// `verify MANIFEST --record R --attest KEY --attest-out OUT`.
fn verify_attest(manifest: &Path, record: &Path, key: &Path, out: &Path) -> Output {
    builder(&[
        "verify",
        manifest.to_str().unwrap(),
        "--record",
        record.to_str().unwrap(),
        "--attest",
        key.to_str().unwrap(),
        "--attest-out",
        out.to_str().unwrap(),
        "--quiet",
    ])
}

#[test]
fn signed_release_verifies_with_python_cryptography_for_ed25519_and_p256() {
    let p = Project::new();
    let out = p.build(&p.manifest("m.toml", "notes-v1.txt"), "out");
    let before = sha256sum_dir(&out);
    assert!(before.contains_key("record.json") && before.contains_key("disk-data.img"));
    let record: Value =
        serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap();

    for alg in ["ed25519", "p256"] {
        let (key, fingerprint) = p.keygen(&format!("{alg}.key"), alg);
        let mode = fs_err::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{alg}: the private key's mode");
        let pem = fs_err::read_to_string(&key).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        // keygen never overwrites.
        let again = builder(&["keygen", "--out", key.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(EXIT_INPUT_REFUSED));
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
        assert_eq!(
            fs_err::read_to_string(&key).unwrap(),
            pem,
            "keygen overwrote"
        );

        ok(&sign(&out, &key), &format!("sign ({alg})"));
        let public = PathBuf::from(format!("{}.pub", key.display()));
        for file in ["release.intoto.json", "provenance.intoto.json"] {
            let (fp, st) = python_verify(&out.join(file), &public)
                .unwrap_or_else(|e| panic!("{alg} {file}: {e}"));
            assert_eq!(
                fp, fingerprint,
                "{alg}: keygen's fingerprint vs sha256 of the SPKI"
            );
            assert_eq!(subjects(&st), before, "{alg} {file}: subjects vs sha256sum");
            if file == "release.intoto.json" {
                assert_eq!(st["predicateType"], "urn:enclave-builder:release:v1");
                assert_eq!(st["predicate"], record, "the predicate is record.json");
            } else {
                assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
                let bd = &st["predicate"]["buildDefinition"];
                assert_eq!(
                    bd["externalParameters"]["manifest"]["digest"]["sha256"],
                    record["manifest_sha256"]
                );
                assert_eq!(
                    bd["resolvedDependencies"].as_array().unwrap().len(),
                    record["inputs"].as_array().unwrap().len() + 2,
                    "every input and each profile's firmware"
                );
            }
        }
        assert_eq!(
            sha256sum_dir(&out),
            before,
            "{alg}: signing changed an artifact"
        );

        // The independent verifier can fail: a flipped signature byte is refused.
        let env_path = out.join("release.intoto.json");
        let mut env: Value = serde_json::from_slice(&fs_err::read(&env_path).unwrap()).unwrap();
        let sig = env["signatures"][0]["sig"].as_str().unwrap().to_owned();
        let mut raw = base64_decode(&sig);
        raw[10] ^= 0x01;
        env["signatures"][0]["sig"] = Value::String(base64_encode(&raw));
        let bad = p.path().join(format!("bad-{alg}.json"));
        fs_err::write(&bad, serde_json::to_vec(&env).unwrap()).unwrap();
        let e = python_verify(&bad, &public).unwrap_err();
        assert!(e.contains("does not verify"), "{alg}: {e}");
    }
}

#[test]
fn sign_refuses_a_directory_that_is_not_the_recorded_output() {
    let p = Project::new();
    let out = p.build(&p.manifest("m.toml", "notes-v1.txt"), "out");
    let (key, _) = p.keygen("k", "ed25519");
    let altered = p.copy(&out, "altered");
    fs_err::write(altered.join("cmdline"), b"console=ttyS0 init=/bin/sh\n").unwrap();
    let stray = p.copy(&out, "stray");
    fs_err::write(stray.join("notes.txt"), b"not an output\n").unwrap();
    for (dir, file, says) in [
        (&altered, "cmdline", "record.json says"),
        (&stray, "notes.txt", "not listed in record.json's outputs"),
    ] {
        let o = sign(dir, &key);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(EXIT_INPUT_REFUSED), "{err}");
        assert!(err.contains(&dir.join(file).display().to_string()), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!dir.join("release.intoto.json").exists());
    }
}

#[test]
fn release_check_enforces_the_policy_and_names_each_failure() {
    let p = Project::new();
    let manifest = p.manifest("m.toml", "notes-v1.txt");
    let out = p.build(&manifest, "out");
    let (publisher, publisher_fp) = p.keygen("publisher", "ed25519");
    let (r1, r1_fp) = p.keygen("rebuilder1", "p256");
    let (_r2, r2_fp) = p.keygen("rebuilder2", "ed25519");
    let (untrusted, untrusted_fp) = p.keygen("untrusted", "ed25519");
    ok(&sign(&out, &publisher), "sign");

    // Two rebuilders attest: r1 (trusted) and an untrusted key.
    let record = out.join("record.json");
    for (key, fp) in [(&r1, &r1_fp), (&untrusted, &untrusted_fp)] {
        let short = &fp["sha256:".len().."sha256:".len() + 16];
        let att = out.join(format!("rebuild-{short}.intoto.json"));
        ok(
            &verify_attest(&manifest, &record, key, &att),
            "verify --attest",
        );
        assert!(att.is_file() && out.join(format!("rebuild-{short}.pub")).is_file());
        // The attestation verifies independently too.
        let (_, st) =
            python_verify(&att, &PathBuf::from(format!("{}.pub", key.display()))).unwrap();
        assert_eq!(st["predicateType"], "urn:enclave-builder:rebuild:v1");
        assert_eq!(st["predicate"]["result"], "identical");
        assert_eq!(subjects(&st), sha256sum_dir(&out));
    }

    let policy = |publisher: &str, rebuilders: &[&str], required: usize| {
        let list = |v: &[&str]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "publisher_keys = [{}]\nrebuilder_keys = [{}]\nrebuilders_required = {required}\n",
            list(&[publisher]),
            list(rebuilders)
        )
    };

    // One trusted rebuilder required: holds; the measurement set is printed.
    let (code, text) = p.check(&out, &policy("publisher.pub", &["rebuilder1.pub"], 1));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "ok   release.signature: verified by {publisher_fp}"
        )),
        "{text}"
    );
    assert!(
        text.contains("ok   rebuilders: 1 of 1 required; missing: none"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "not counted: no trusted signature (signature 0 by {untrusted_fp}: not a trusted key)"
        )),
        "{text}"
    );
    let rec: Value = serde_json::from_slice(&fs_err::read(&record).unwrap()).unwrap();
    let snp = rec["measurements"][0]["platform"]["launch_digest"]
        .as_str()
        .unwrap();
    let rtmr2 = rec["measurements"][1]["platform"]["rtmr2"]
        .as_str()
        .unwrap();
    assert!(
        text.contains(&format!("snp (snp) launch_digest = {snp}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("tdx (tdx) rtmr2 = {rtmr2}")),
        "{text}"
    );
    assert!(text.contains("release ACCEPTED"), "{text}");

    // Keys pinned by fingerprint are taken from the .pub files shipped in the release.
    let (code, text) = p.check(&out, &policy(&publisher_fp, &[&r1_fp], 1));
    assert_eq!(code, Some(0), "{text}");

    // Two required, one present: fails, naming the missing rebuilder (and only it).
    let (code, text) = p.check(
        &out,
        &policy("publisher.pub", &["rebuilder1.pub", "rebuilder2.pub"], 2),
    );
    assert_eq!(code, Some(EXIT_RELEASE_REJECTED), "{text}");
    assert!(text.contains(&format!("FAIL rebuilders: expected at least 2 distinct trusted rebuilder(s), actual 1 of 2 required; missing: {r2_fp}\n")), "{text}");

    // An attestation by an untrusted key does not count.
    let (code, text) = p.check(&out, &policy("publisher.pub", &["rebuilder2.pub"], 1));
    assert_eq!(code, Some(EXIT_RELEASE_REJECTED), "{text}");
    assert!(
        text.contains(&format!("0 of 1 required; missing: {r2_fp}")),
        "{text}"
    );

    // A release signed by a key the policy does not trust.
    let (code, text) = p.check(&out, &policy("untrusted.pub", &[], 0));
    assert_eq!(code, Some(EXIT_RELEASE_REJECTED), "{text}");
    assert!(text.contains(&format!("FAIL release.signature: expected a valid signature by one of [{untrusted_fp}], actual signature 0 by {publisher_fp}: not a trusted key")), "{text}");

    // A corrupted signature.
    let corrupt = p.copy(&out, "corrupt");
    let env_path = corrupt.join("release.intoto.json");
    let mut env: Value = serde_json::from_slice(&fs_err::read(&env_path).unwrap()).unwrap();
    let mut raw = base64_decode(env["signatures"][0]["sig"].as_str().unwrap());
    raw[0] ^= 0x80;
    env["signatures"][0]["sig"] = Value::String(base64_encode(&raw));
    fs_err::write(&env_path, serde_json::to_vec(&env).unwrap()).unwrap();
    let (code, text) = p.check(&corrupt, &policy("publisher.pub", &[], 0));
    assert_eq!(code, Some(EXIT_RELEASE_REJECTED), "{text}");
    assert!(text.contains(&format!("FAIL release.signature: expected a valid signature by one of [{publisher_fp}], actual signature 0 by {publisher_fp}: does not verify")), "{text}");

    // A file altered after signing.
    let altered = p.copy(&out, "altered");
    fs_err::write(altered.join("cmdline"), b"console=ttyS0 init=/bin/sh\n").unwrap();
    let (code, text) = p.check(&altered, &policy("publisher.pub", &[], 0));
    assert_eq!(code, Some(EXIT_RELEASE_REJECTED), "{text}");
    let signed = sha256_file(&out.join("cmdline"));
    let now = sha256_file(&altered.join("cmdline"));
    assert!(
        text.contains(&format!(
            "FAIL subject cmdline: expected {signed}, actual {now}"
        )),
        "{text}"
    );
    assert_eq!(
        text.matches("FAIL").count(),
        1,
        "only the file fails:\n{text}"
    );

    // The record altered after signing (a measurement replaced).
    let forged = p.copy(&out, "forged");
    let text_rec = fs_err::read_to_string(forged.join("record.json")).unwrap();
    fs_err::write(
        forged.join("record.json"),
        text_rec.replace(snp, &"0".repeat(96)),
    )
    .unwrap();
    let (code, text) = p.check(&forged, &policy("publisher.pub", &[], 0));
    assert_eq!(code, Some(EXIT_RELEASE_REJECTED), "{text}");
    for needle in [
        "FAIL subject record.json",
        "FAIL record.digest",
        "FAIL record.predicate",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    // The pinned values are the signed ones, not the forged file's.
    assert!(text.contains(&format!("launch_digest = {snp}")), "{text}");

    // --json carries the same verdict.
    let both = policy("publisher.pub", &["rebuilder1.pub", "rebuilder2.pub"], 2);
    let o = p.run_check(&out, &both, &["--json"]);
    assert_eq!(o.status.code(), Some(EXIT_RELEASE_REJECTED));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(v["rebuilders"], serde_json::json!([r1_fp]));
    assert_eq!(v["missing_rebuilders"], serde_json::json!([r2_fp]));
    assert_eq!(v["measurements"][0]["values"]["launch_digest"], snp);
}

#[test]
fn verify_attest_writes_nothing_when_verification_fails() {
    let p = Project::new();
    let out_v1 = p.build(&p.manifest("v1.toml", "notes-v1.txt"), "v1");
    let v2 = p.manifest("v2.toml", "notes-v2.txt");
    let (key, fp) = p.keygen("rebuilder", "ed25519");
    let att = p.path().join("att.intoto.json");
    let o = verify_attest(&v2, &out_v1.join("record.json"), &key, &att);
    assert_eq!(
        o.status.code(),
        Some(EXIT_INPUTS_DIFFER),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !att.exists() && !p.path().join("att.pub").exists(),
        "an attestation was written for a failed verification"
    );

    // The default name, in the current directory, after a successful one.
    let cwd = p.path().join("cwd");
    fs_err::create_dir(&cwd).unwrap();
    let o = Command::new(builder_bin())
        .args([
            "verify",
            p.path().join("v1.toml").to_str().unwrap(),
            "--record",
            out_v1.join("record.json").to_str().unwrap(),
            "--attest",
            key.to_str().unwrap(),
            "--quiet",
        ])
        .current_dir(&cwd)
        .output()
        .unwrap();
    ok(&o, "verify --attest");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("verified: the rebuild matches the published record\n")
            && stdout.contains(&format!("rebuild attestation by {fp} written to rebuild-")),
        "{stdout}"
    );
    let short = &fp["sha256:".len().."sha256:".len() + 16];
    let names: Vec<String> = fs_err::read_dir(&cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&format!("rebuild-{short}.intoto.json")),
        "{names:?}"
    );
    assert!(names.contains(&format!("rebuild-{short}.pub")), "{names:?}");
}

#[test]
fn release_diff_names_what_a_data_disk_file_changes() {
    let p = Project::new();
    let a = p.build(&p.manifest("v1.toml", "notes-v1.txt"), "v1");
    let b = p.build(&p.manifest("v2.toml", "notes-v2.txt"), "v2");
    // What physically differs, from the bytes: only the disk image and the command line
    // that carries its root hash.
    let (sa, sb) = (sha256sum_dir(&a), sha256sum_dir(&b));
    let differ: Vec<&str> = sa
        .iter()
        .filter(|(n, d)| sb.get(*n) != Some(d) && n.as_str() != "record.json")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(differ, ["cmdline", "disk-data.img"]);

    let o = builder(&[
        "release",
        "diff",
        a.to_str().unwrap(),
        b.join("record.json").to_str().unwrap(),
        "--json",
    ]);
    ok(&o, "release diff --json");
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["changed"], true);
    let status = |section: &str| diff_statuses(&d, section);
    let inputs = status("inputs");
    assert_eq!(inputs["file data:/notes.txt"], "changed", "{inputs:?}");
    for unchanged in ["layer base.tar", "kernel", "firmware"] {
        assert_eq!(inputs[unchanged], "unchanged", "{unchanged}: {inputs:?}");
    }
    assert_eq!(
        inputs.values().filter(|s| *s != "unchanged").count(),
        1,
        "{inputs:?}"
    );
    let outputs = status("outputs");
    for name in sa.keys() {
        if name == "record.json" {
            continue;
        }
        let expect = if differ.contains(&name.as_str()) {
            "changed"
        } else {
            "unchanged"
        };
        assert_eq!(outputs[name], expect, "{name}: {outputs:?}");
    }
    assert_eq!(outputs["rootfs.img"], "unchanged");
    assert_eq!(outputs["vmlinuz"], "unchanged");
    assert_eq!(outputs["OVMF.fd"], "unchanged");
    let m = status("measurements");
    assert_eq!(m["snp (snp) launch_digest"], "changed", "{m:?}");
    assert_eq!(m["tdx (tdx) rtmr2"], "changed", "{m:?}");
    assert_eq!(m["tdx (tdx) mrtd"], "unchanged", "{m:?}");
    assert_eq!(m["tdx (tdx) rtmr1"], "unchanged", "{m:?}");
    assert_eq!(m["snp (snp) firmware_sha256"], "unchanged", "{m:?}");
    assert_eq!(d["kernel_cmdline"]["status"], "changed");
    let cmd_a = fs_err::read_to_string(a.join("cmdline")).unwrap();
    let full = d["kernel_cmdline"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "full")
        .expect("the full command line is named");
    assert_eq!(full["old"].as_str().unwrap(), cmd_a.trim_end());

    // The words say the same.
    let o = builder(&["release", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    ok(&o, "release diff");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("  changed   file data:/notes.txt\n"),
        "{text}"
    );
    assert!(
        text.contains("  changed   snp (snp) launch_digest\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("  unchanged") && l.contains("rootfs.img")),
        "{text}"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    let o = Command::new("python3")
        .args([
            "-c",
            "import base64,sys; sys.stdout.write(base64.b64decode(sys.argv[1]).hex())",
            s,
        ])
        .output()
        .unwrap();
    hex::decode(String::from_utf8(o.stdout).unwrap()).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    let o = Command::new("python3")
        .args(["-c", "import base64,sys; sys.stdout.write(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())", &hex::encode(b)])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap()
}

//! The whole release path on the demo image, against a real registry on loopback: build ->
//! keygen -> sign -> push -> pull by digest in another process (identical, `diff -r`) ->
//! `release check` of the registry reference -> a rebuilder's `verify --attest` -> `push
//! --attach` -> `release check` with one and with two rebuilders required. Then a release that
//! changes only the model: what `push` uploads again (counted in the registry's access log)
//! and what `release diff` names.
//!
//! Independent checks: the envelope pulled from the registry is verified by the Python DSSE
//! verifier (`tests/vectors/dsse_verify.py`, pyca `cryptography`), its subjects against
//! `sha256sum` of the pulled files; directories by `diff -r`; changed files by `sha256sum`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::registry_server::TestRegistry;
use crate::release::{python_verify, sha256sum_dir, subjects};
use crate::util::{builder_bin, demo_build, demo_manifest, diff_statuses, ok, tool};

const EXIT_RELEASE_REJECTED: i32 = 9;

/// Runs the builder in `cwd` with no registry credentials in the environment.
fn eb(cwd: &Path, args: &[&str]) -> Output {
    Command::new(builder_bin())
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The digest `push` prints as its last stdout line.
fn pushed(o: &Output) -> String {
    ok(o, "push");
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("sha256:") && last.len() == 71, "{out}");
    last
}

/// `cp -a` of the shared demo build, so that signing it leaves the other tests' copy alone.
fn copy_demo(to: &Path) {
    ok(
        &tool(
            "cp",
            &["-a", demo_build().to_str().unwrap(), to.to_str().unwrap()],
        ),
        "cp -a",
    );
}

fn keygen(dir: &Path, name: &str, algorithm: &str) -> (PathBuf, String) {
    crate::util::keygen(|args| eb(dir, args), dir.join(name), algorithm)
}

fn policy(dir: &Path, required: usize) -> PathBuf {
    let p = dir.join(format!("policy-{required}.toml"));
    fs_err::write(
        &p,
        format!(
            "publisher_keys = [\"publisher.key.pub\"]\n\
             rebuilder_keys = [\"rebuilder1.key.pub\", \"rebuilder2.key.pub\"]\n\
             rebuilders_required = {required}\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn demo_release_signed_pushed_pulled_attested_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rel = t.join("release");
    copy_demo(&rel);
    let (publisher, publisher_fp) = keygen(t, "publisher.key", "ed25519");
    let (rebuilder1, _) = keygen(t, "rebuilder1.key", "p256");
    let (_, rebuilder2_fp) = keygen(t, "rebuilder2.key", "ed25519");

    ok(
        &eb(
            t,
            &[
                "sign",
                rel.to_str().unwrap(),
                "--key",
                publisher.to_str().unwrap(),
            ],
        ),
        "sign",
    );

    let reg = TestRegistry::start(None);
    let repo = format!("{}/enclave/demo", reg.addr);
    let digest = pushed(&eb(
        t,
        &["push", rel.to_str().unwrap(), &format!("{repo}:0.1.0")],
    ));
    let reference = format!("{repo}@{digest}");

    // Pulled by digest in another process: the very directory that was pushed.
    let pulled = t.join("pulled");
    ok(
        &eb(
            t,
            &[
                "pull",
                &reference,
                "--out",
                pulled.to_str().unwrap(),
                "--quiet",
            ],
        ),
        "pull",
    );
    ok(
        &tool(
            "diff",
            &["-r", rel.to_str().unwrap(), pulled.to_str().unwrap()],
        ),
        "diff -r pushed pulled",
    );
    // The independent verifier accepts the pulled envelope, and its subjects are the
    // sha256sum of the pulled files.
    let (fp, statement) = python_verify(
        &pulled.join("release.intoto.json"),
        &t.join("publisher.key.pub"),
    )
    .unwrap_or_else(|e| panic!("dsse_verify.py refused the pulled envelope: {e}"));
    assert_eq!(fp, publisher_fp);
    assert_eq!(subjects(&statement), sha256sum_dir(&pulled));

    // The client checks the registry reference itself.
    let check = |required: usize| {
        eb(
            t,
            &[
                "release",
                "check",
                &reference,
                "--policy",
                policy(t, required).to_str().unwrap(),
            ],
        )
    };
    let o = check(0);
    ok(&o, "release check REF (no rebuilder required)");
    assert!(
        text(&o).contains(&format!(
            "ok   release.signature: verified by {publisher_fp}"
        )),
        "{}",
        text(&o)
    );

    // A third party rebuilds from the manifest, compares with the pulled record, attests.
    let attest_dir = t.join("rebuilder1");
    fs_err::create_dir(&attest_dir).unwrap();
    let o = eb(
        &attest_dir,
        &[
            "verify",
            demo_manifest().to_str().unwrap(),
            "--record",
            pulled.join("record.json").to_str().unwrap(),
            "--attest",
            rebuilder1.to_str().unwrap(),
            "--quiet",
        ],
    );
    ok(&o, "verify --attest");
    let mut attached: Vec<PathBuf> = fs_err::read_dir(&attest_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    attached.sort();
    let names: Vec<String> = attached
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.len() == 2
            && names.iter().any(|n| n.ends_with(".intoto.json"))
            && names.iter().any(|n| n.ends_with(".pub")),
        "{names:?}"
    );
    for f in &attached {
        let o = eb(t, &["push", "--attach", f.to_str().unwrap(), &reference]);
        assert_eq!(pushed(&o), digest, "attaching keeps the release digest");
    }

    let o = check(1);
    ok(&o, "release check REF (one rebuilder required)");
    let o = check(2);
    assert_eq!(o.status.code(), Some(EXIT_RELEASE_REJECTED), "{}", text(&o));
    assert!(
        text(&o).contains("FAIL rebuilders:")
            && text(&o).contains("1 of 2 required")
            && text(&o).contains(&format!("missing: {rebuilder2_fp}")),
        "the missing rebuilder is named:\n{}",
        text(&o)
    );
}

/// A release that changes only the model uploads only the files that changed, and
/// `release diff` names the model input, the model disk, the command line, the SNP launch
/// digest and TDX RTMR2 as changed, and MRTD, RTMR1, rootfs.img, the kernel and the firmware
/// as unchanged.
#[test]
fn demo_model_change_uploads_only_what_changed_and_release_diff_names_it() {
    let manifest = demo_manifest();
    let text_m = fs_err::read_to_string(&manifest).unwrap();
    let extra = "\n[[disks.files]]\npath = \"/NOTICE\"\nsource = \"files/motd\"\n\
        sha256 = \"f97ada0d8c3525aab287482c07b253fff5382ef6dd8b4c0667d39fe678d0d249\"\nmode = 0o644\n";
    let changed = text_m.replacen("\n[boot]", &format!("{extra}\n[boot]"), 1);
    assert_ne!(changed, text_m);
    let variant = tempfile::Builder::new()
        .prefix(".release-variant-")
        .suffix(".toml")
        .tempfile_in(manifest.parent().unwrap())
        .unwrap();
    fs_err::write(variant.path(), changed).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let old = t.join("old");
    copy_demo(&old);
    let new = t.join("new");
    ok(
        &eb(
            t,
            &[
                "build",
                variant.path().to_str().unwrap(),
                "--out",
                new.to_str().unwrap(),
                "--quiet",
            ],
        ),
        "build of the model variant",
    );

    // What differs, by sha256sum.
    let (a, b) = (sha256sum_dir(&old), sha256sum_dir(&new));
    let differ: BTreeMap<&String, &String> =
        b.iter().filter(|(n, d)| a.get(*n) != Some(*d)).collect();
    let names: BTreeSet<&str> = differ.keys().map(|n| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "cmdline",
            "disk-model.img",
            "record.json",
            "uki-qemu-swtpm.efi"
        ])
    );

    let reg = TestRegistry::start(None);
    let repo = format!("{}/enclave/demo", reg.addr);
    pushed(&eb(
        t,
        &["push", old.to_str().unwrap(), &format!("{repo}:1")],
    ));
    let before = reg.committed_uploads("enclave/demo").len();
    pushed(&eb(
        t,
        &["push", new.to_str().unwrap(), &format!("{repo}:2")],
    ));
    let uploads: BTreeSet<String> = reg.committed_uploads("enclave/demo")[before..]
        .iter()
        .cloned()
        .collect();
    let expected: BTreeSet<String> = differ.values().map(|d| format!("sha256:{d}")).collect();
    assert_eq!(
        uploads, expected,
        "the second push uploads exactly the changed files"
    );

    let o = eb(
        t,
        &[
            "release",
            "diff",
            old.to_str().unwrap(),
            new.to_str().unwrap(),
            "--json",
        ],
    );
    ok(&o, "release diff --json");
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    let status = |part: &str| diff_statuses(&d, part);
    let inputs = status("inputs");
    let model_inputs: Vec<_> = inputs
        .iter()
        .filter(|(n, s)| n.contains("model") && s.as_str() != "unchanged")
        .collect();
    assert!(
        !model_inputs.is_empty(),
        "a model input changed: {inputs:?}"
    );
    for (n, s) in &inputs {
        if !n.contains("model") {
            assert_eq!(s, "unchanged", "{n}: {inputs:?}");
        }
    }
    let outputs = status("outputs");
    assert_eq!(outputs["disk-model.img"], "changed", "{outputs:?}");
    assert_eq!(outputs["cmdline"], "changed", "{outputs:?}");
    for same in ["rootfs.img", "vmlinuz", "OVMF.fd", "initrd.img"] {
        assert_eq!(outputs[same], "unchanged", "{same}: {outputs:?}");
    }
    let m = status("measurements");
    let by_suffix = |suffix: &str| -> Vec<&String> {
        m.iter()
            .filter(|(n, _)| n.ends_with(suffix))
            .map(|(_, s)| s)
            .collect()
    };
    assert_eq!(by_suffix(" launch_digest"), ["changed"], "{m:?}");
    assert_eq!(by_suffix(" rtmr2"), ["changed"], "{m:?}");
    assert_eq!(by_suffix(" mrtd"), ["unchanged"], "{m:?}");
    assert_eq!(by_suffix(" rtmr1"), ["unchanged"], "{m:?}");
    for s in by_suffix(" firmware_sha256") {
        assert_eq!(s, "unchanged", "{m:?}");
    }
    assert_eq!(d["kernel_cmdline"]["status"], "changed");
}

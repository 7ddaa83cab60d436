//! `push` and `pull` against a real registry (Debian's CNCF distribution 2.8, on 127.0.0.1),
//! read back by independent clients (`skopeo inspect --raw`, `curl`), digests from
//! `sha256sum`, directories compared with `diff -r`. A loopback proxy corrupts one byte of a
//! blob or cuts a push mid-blob; the registry's access log counts committed blob uploads.
//!
//! Distribution 2.8 has no referrers API (`/v2/NAME/referrers/DIGEST` answers 404), so these
//! tests exercise the tag-schema fallback (`sha256-HEX` index) on both push and pull.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::registry_server::{auth_file, Fault, Proxy, TestRegistry};
use crate::util::{builder_bin, ok, tool, DEMO_OUTPUT_FILES};

/// Runs the builder with a clean credentials environment (`env` adds to it).
fn eb(args: &[&str], home: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(builder_bin());
    cmd.args(args)
        .env("HOME", home)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `pull REFERENCE --out OUT` with a clean credentials environment, asserting success.
fn pull_ok(reference: &str, out: &Path, home: &Path, what: &str) {
    let o = eb(
        &["pull", reference, "--out", out.to_str().unwrap()],
        home,
        &[],
    );
    ok(&o, what);
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The digest `push` printed as its last line.
fn pushed_digest(o: &Output) -> String {
    ok(o, "push");
    let last = stdout(o).lines().last().unwrap_or_default().to_owned();
    assert!(
        last.len() == 71
            && last.starts_with("sha256:")
            && last[7..].bytes().all(|b| b.is_ascii_hexdigit()),
        "the last stdout line is not a digest: {last:?}"
    );
    last
}

/// `sha256:` + sha256sum of a file.
fn sha256sum(path: &Path) -> String {
    let out = tool("sha256sum", &[path.to_str().unwrap()]);
    assert!(out.status.success());
    format!("sha256:{}", &stdout(&out)[..64])
}

/// Deterministic bytes (an LCG), `len` long.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// A registry without authentication, and a temporary directory (also the credentials
/// home) holding the release directory `name` made by [`release_dir`].
fn open_registry_and_release(
    name: &str,
    model: &[u8],
) -> (TestRegistry, tempfile::TempDir, PathBuf) {
    let reg = TestRegistry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let dir = release_dir(tmp.path(), name, model);
    (reg, tmp, dir)
}

/// A release directory like `build` writes (record.json's outputs from `sha256sum`), with a
/// model disk of `model` and two envelopes.
fn release_dir(root: &Path, name: &str, model: &[u8]) -> PathBuf {
    let dir = root.join(name);
    fs_err::create_dir_all(&dir).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("rootfs.img", bytes(1, 2 << 20)),
        ("disk-model.img", model.to_vec()),
        ("vmlinuz", bytes(2, 300_000)),
        ("initrd.img", b"070701".repeat(40)),
        ("OVMF.fd", bytes(3, 200_000)),
        ("cmdline", b"console=ttyS0 root=/dev/dm-0".to_vec()),
        (
            "run-qemu.sh",
            b"#!/bin/sh\nexec qemu-system-x86_64 \"$@\"\n".to_vec(),
        ),
        ("uki-qemu-swtpm.efi", bytes(4, 100_000)),
    ];
    let mut outputs = Vec::new();
    for (n, b) in &files {
        let p = dir.join(n);
        fs_err::write(&p, b).unwrap();
        outputs.push(serde_json::json!({
            "name": n, "size": b.len(), "sha256": &sha256sum(&p)[7..]
        }));
    }
    fs_err::set_permissions(
        dir.join("run-qemu.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let record = serde_json::json!({"schema": "enclave-builder.record.v1", "outputs": outputs});
    fs_err::write(
        dir.join("record.json"),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
    fs_err::write(
        dir.join("release.intoto.json"),
        br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#,
    )
    .unwrap();
    fs_err::write(
        dir.join("rebuild-0a1b2c.intoto.json"),
        br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30K","signatures":[]}"#,
    )
    .unwrap();
    dir
}

fn skopeo_raw(reference: &str) -> (Vec<u8>, Value) {
    let out = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ],
    );
    assert!(out.status.success(), "skopeo: {}", stderr(&out));
    let v = serde_json::from_slice(&out.stdout).unwrap();
    (out.stdout, v)
}

fn curl(args: &[&str]) -> Output {
    let out = tool("curl", args);
    assert!(out.status.success(), "curl {args:?}: {}", stderr(&out));
    out
}

fn diff_r(a: &Path, b: &Path) {
    let out = tool("diff", &["-r", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "diff -r {} {}:\n{}",
        a.display(),
        b.display(),
        stdout(&out)
    );
}

/// Nothing named like the output (or its staging directory) in `parent`.
fn nothing_left(parent: &Path, name: &str) {
    let left: Vec<String> = fs_err::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n == name || n.starts_with(&format!(".{name}.partial-")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn push_pull_round_trip_layout_and_dedup() {
    let (reg, tmp, dir) = open_registry_and_release("rel1", &bytes(10, 1 << 20));
    let home = tmp.path();
    let repo = format!("{}/enclave/demo", reg.addr);

    let d1 = pushed_digest(&eb(
        &["push", dir.to_str().unwrap(), &format!("{repo}:0.1")],
        home,
        &[],
    ));

    // The manifest, as skopeo reads it.
    let (raw, m) = skopeo_raw(&format!("{repo}@{d1}"));
    let raw_file = tmp.path().join("manifest.json");
    fs_err::write(&raw_file, &raw).unwrap();
    assert_eq!(
        sha256sum(&raw_file),
        d1,
        "the digest printed is not the manifest's"
    );
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["artifactType"],
        "application/vnd.enclave-builder.release.v1"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(
        m["config"]["digest"],
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    let layers = m["layers"].as_array().unwrap();
    let titles: Vec<&str> = layers
        .iter()
        .map(|l| {
            l["annotations"]["org.opencontainers.image.title"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(titles, DEMO_OUTPUT_FILES);
    for l in layers {
        let t = l["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .unwrap();
        assert_eq!(
            l["digest"].as_str().unwrap(),
            sha256sum(&dir.join(t)),
            "{t}"
        );
        assert_eq!(
            l["size"].as_u64().unwrap(),
            fs_err::metadata(dir.join(t)).unwrap().len()
        );
    }
    let mt = |t: &str| {
        layers
            .iter()
            .find(|l| l["annotations"]["org.opencontainers.image.title"] == t)
            .unwrap()["mediaType"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        mt("disk-model.img"),
        "application/vnd.enclave-builder.disk.erofs-verity.v1"
    );
    assert_eq!(
        mt("record.json"),
        "application/vnd.enclave-builder.record.v1+json"
    );
    assert_eq!(mt("vmlinuz"), "application/vnd.enclave-builder.kernel.v1");
    assert!(
        !String::from_utf8_lossy(&raw).contains("created"),
        "no timestamps in the manifest"
    );

    // Referrers: the registry lacks the API, so the tag-schema index lists them.
    let hex = &d1[7..];
    let code = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/v2/enclave/demo/referrers/{d1}", reg.addr),
    ]);
    assert_eq!(
        stdout(&code),
        "404",
        "distribution 2.8 has no referrers API"
    );
    let index: Value = serde_json::from_slice(
        &curl(&[
            "-s",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
            &format!("http://{}/v2/enclave/demo/manifests/sha256-{hex}", reg.addr),
        ])
        .stdout,
    )
    .unwrap();
    let mut kinds = BTreeSet::new();
    for e in index["manifests"].as_array().unwrap() {
        kinds.insert(e["artifactType"].as_str().unwrap().to_owned());
        let (_, r) = skopeo_raw(&format!("{repo}@{}", e["digest"].as_str().unwrap()));
        assert_eq!(r["subject"]["digest"], d1.as_str());
        assert_eq!(
            r["layers"][0]["mediaType"],
            "application/vnd.dsse.envelope.v1+json"
        );
        let t = r["layers"][0]["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .unwrap();
        assert_eq!(
            r["layers"][0]["digest"].as_str().unwrap(),
            sha256sum(&dir.join(t))
        );
    }
    assert_eq!(
        kinds,
        BTreeSet::from([
            "application/vnd.enclave-builder.rebuild.v1".to_owned(),
            "application/vnd.enclave-builder.signature.v1".to_owned()
        ])
    );

    // Pull in another process into a fresh directory: identical, scripts executable.
    let out = tmp.path().join("pulled");
    pull_ok(&format!("{repo}@{d1}"), &out, home, "pull");
    diff_r(&dir, &out);
    let mode = fs_err::metadata(out.join("run-qemu.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // An envelope attached later: the release digest stays, and pull brings it along.
    let prov = tmp.path().join("provenance.intoto.json");
    fs_err::write(
        &prov,
        br#"{"payloadType":"x","payload":"cHJvdg==","signatures":[]}"#,
    )
    .unwrap();
    let o = eb(
        &[
            "push",
            "--attach",
            prov.to_str().unwrap(),
            &format!("{repo}@{d1}"),
        ],
        home,
        &[],
    );
    assert_eq!(pushed_digest(&o), d1);
    let out2 = tmp.path().join("pulled2");
    pull_ok(&format!("{repo}@{d1}"), &out2, home, "pull after attach");
    fs_err::copy(&prov, dir.join("provenance.intoto.json")).unwrap();
    diff_r(&dir, &out2);
    fs_err::remove_file(dir.join("provenance.intoto.json")).unwrap();

    // The same files again: the same digest, nothing uploaded.
    let before = reg.committed_uploads("enclave/demo");
    let again = pushed_digest(&eb(
        &["push", dir.to_str().unwrap(), &format!("{repo}:0.1")],
        home,
        &[],
    ));
    assert_eq!(again, d1, "the release manifest is not deterministic");
    assert_eq!(
        reg.committed_uploads("enclave/demo"),
        before,
        "a blob was uploaded again"
    );

    // A release that changes only the model: only the model disk and record.json go up.
    let dir2 = release_dir(tmp.path(), "rel2", &bytes(11, 1 << 20));
    let d2 = pushed_digest(&eb(
        &["push", dir2.to_str().unwrap(), &format!("{repo}:0.2")],
        home,
        &[],
    ));
    assert_ne!(d2, d1);
    let after = reg.committed_uploads("enclave/demo");
    let new: BTreeSet<String> = after[before.len()..].iter().cloned().collect();
    assert_eq!(
        new,
        BTreeSet::from([
            sha256sum(&dir2.join("disk-model.img")),
            sha256sum(&dir2.join("record.json"))
        ]),
        "uploads of the second release"
    );
}

#[test]
fn pull_refuses_and_leaves_nothing() {
    let reg = TestRegistry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let mut model = bytes(20, 600_000);
    let marker = b"TAMPER-MARKER-5f3a9c";
    model.splice(300_000..300_000 + marker.len(), marker.iter().copied());
    let dir = release_dir(tmp.path(), "rel", &model);
    let repo = format!("{}/enclave/demo", reg.addr);
    let d = pushed_digest(&eb(
        &["push", dir.to_str().unwrap(), &format!("{repo}:1")],
        home,
        &[],
    ));
    let out = tmp.path().join("out");
    let pull = |reference: &str| {
        eb(
            &["pull", reference, "--out", out.to_str().unwrap()],
            home,
            &[],
        )
    };

    // No digest: refused (exit 3).
    let o = pull(&format!("{repo}:1"));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("names no digest"), "{}", stderr(&o));
    nothing_left(tmp.path(), "out");

    // A digest that does not exist: exit 8, named.
    let zero = format!("sha256:{}", "0".repeat(64));
    let o = pull(&format!("{repo}@{zero}"));
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&zero), "{}", stderr(&o));
    nothing_left(tmp.path(), "out");

    // One flipped byte in the model disk's blob, in transit: a digest error, no directory.
    let proxy = Proxy::start(&reg.addr, Fault::FlipInResponse(marker.to_vec()));
    let o = pull(&format!("{}/enclave/demo@{d}", proxy.addr));
    assert!(
        proxy.fired.load(std::sync::atomic::Ordering::SeqCst),
        "the proxy flipped nothing"
    );
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("disk-model.img") && e.contains(&sha256sum(&dir.join("disk-model.img"))),
        "{e}"
    );
    assert!(e.contains("sha256"), "{e}");
    nothing_left(tmp.path(), "out");
    drop(proxy);

    // Hostile manifests (stored with curl, over the blobs pushed above): a title that climbs
    // out of the directory, and two layers with one name.
    let (_, m) = skopeo_raw(&format!("{repo}@{d}"));
    for (titles, expect) in [
        (vec!["../escape"], "../escape"),
        (vec!["record.json", "record.json"], "two entries"),
    ] {
        let mut h = m.clone();
        let layer = h["layers"][0].clone();
        h["layers"] = Value::Array(
            titles
                .iter()
                .map(|t| {
                    let mut l = layer.clone();
                    l["annotations"]["org.opencontainers.image.title"] = Value::from(*t);
                    l
                })
                .collect(),
        );
        let f = tmp.path().join("hostile.json");
        fs_err::write(&f, serde_json::to_vec(&h).unwrap()).unwrap();
        let hd = sha256sum(&f);
        curl(&[
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            "--data-binary",
            &format!("@{}", f.display()),
            &format!("http://{}/v2/enclave/demo/manifests/{hd}", reg.addr),
        ]);
        let o = pull(&format!("{repo}@{hd}"));
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{}", stderr(&o));
        nothing_left(tmp.path(), "out");
        assert!(!tmp.path().join("escape").exists());
    }
}

#[test]
fn credentials_from_auth_files() {
    let reg = TestRegistry::start(Some(("alice", "s3cret")));
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs_err::create_dir_all(&home).unwrap();
    let dir = release_dir(tmp.path(), "rel", &bytes(30, 100_000));
    let repo = format!("{}/enclave/demo:1", reg.addr);
    let push = |env: &[(&str, &Path)]| eb(&["push", dir.to_str().unwrap(), &repo], &home, env);

    // No credentials anywhere.
    let o = push(&[]);
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("HTTP 401") && stderr(&o).contains("no credentials"),
        "{}",
        stderr(&o)
    );

    // Wrong password in REGISTRY_AUTH_FILE, which is searched first.
    let wrong = tmp.path().join("wrong.json");
    auth_file(&wrong, &reg.addr, "alice", "nope");
    let run = tmp.path().join("run");
    auth_file(
        &run.join("containers/auth.json"),
        &reg.addr,
        "alice",
        "s3cret",
    );
    let o = push(&[("REGISTRY_AUTH_FILE", &wrong), ("XDG_RUNTIME_DIR", &run)]);
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("HTTP 401") && e.contains("user \"alice\"") && e.contains("wrong.json"),
        "{e}"
    );
    assert!(!e.contains("nope"), "the password was printed: {e}");

    // The right one, from $XDG_RUNTIME_DIR/containers/auth.json; then pull with it.
    let d = pushed_digest(&push(&[("XDG_RUNTIME_DIR", &run)]));
    let out = tmp.path().join("out");
    let o = eb(
        &[
            "pull",
            &format!("{}/enclave/demo@{d}", reg.addr),
            "--out",
            out.to_str().unwrap(),
        ],
        &home,
        &[("XDG_RUNTIME_DIR", &run)],
    );
    ok(&o, "pull with credentials");
    diff_r(&dir, &out);

    // ~/.docker/config.json is read last.
    auth_file(
        &home.join(".docker/config.json"),
        &reg.addr,
        "alice",
        "s3cret",
    );
    pushed_digest(&push(&[]));
}

#[test]
fn interrupted_push_completes_on_rerun() {
    let (reg, tmp, dir) = open_registry_and_release("rel", &bytes(40, 24 << 20));
    let home = tmp.path();
    let big = sha256sum(&dir.join("disk-model.img"));

    // The proxy cuts every connection once 10 MiB have gone up: mid-way through the model.
    let proxy = Proxy::start(&reg.addr, Fault::CutAfterRequestBytes(10 << 20));
    let o = eb(
        &[
            "push",
            dir.to_str().unwrap(),
            &format!("{}/enclave/demo:1", proxy.addr),
        ],
        home,
        &[],
    );
    assert!(
        proxy.fired.load(std::sync::atomic::Ordering::SeqCst),
        "the proxy cut nothing"
    );
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    assert!(!reg.committed_uploads("enclave/demo").contains(&big));
    drop(proxy);

    // Rerun: completes; the model disk is committed once, and pull gives the same files.
    let d = pushed_digest(&eb(
        &[
            "push",
            dir.to_str().unwrap(),
            &format!("{}/enclave/demo:1", reg.addr),
        ],
        home,
        &[],
    ));
    let commits = reg.committed_uploads("enclave/demo");
    assert_eq!(
        commits.iter().filter(|c| **c == big).count(),
        1,
        "{commits:?}"
    );
    let out = tmp.path().join("out");
    pull_ok(
        &format!("{}/enclave/demo@{d}", reg.addr),
        &out,
        home,
        "pull",
    );
    diff_r(&dir, &out);
}

#[test]
fn push_refuses_a_directory_that_does_not_match_its_record() {
    // Refused before any connection: the registry address is never used.
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let reference = "127.0.0.1:9/enclave/demo:1";
    // Each case: a release directory spoiled one way, and what the refusal must name.
    type Spoil = fn(&Path);
    let cases: [(&str, Spoil, &str); 5] = [
        (
            "changed",
            |d| fs_err::write(d.join("cmdline"), b"console=ttyS0 init=/bin/sh").unwrap(),
            "cmdline: the record says",
        ),
        (
            "extra",
            |d| fs_err::write(d.join("notes.txt"), b"x").unwrap(),
            "notes.txt: not among the record's outputs",
        ),
        (
            "missing",
            |d| fs_err::remove_file(d.join("vmlinuz")).unwrap(),
            "vmlinuz: listed in the record, missing",
        ),
        (
            "subdir",
            |d| fs_err::create_dir(d.join("sub")).unwrap(),
            "not a regular file",
        ),
        (
            "badenv",
            |d| fs_err::write(d.join("other.intoto.json"), b"{}").unwrap(),
            "other.intoto.json",
        ),
    ];
    for (name, spoil, needle) in cases {
        let dir = release_dir(tmp.path(), name, &bytes(50, 1000));
        spoil(&dir);
        let o = eb(&["push", dir.to_str().unwrap(), reference], home, &[]);
        assert_eq!(o.status.code(), Some(3), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{name}: {}", stderr(&o));
    }

    let dir = release_dir(tmp.path(), "ok", &bytes(50, 1000));
    let o = eb(
        &[
            "push",
            dir.to_str().unwrap(),
            &format!("{reference}@sha256:{}", "0".repeat(64)),
        ],
        home,
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

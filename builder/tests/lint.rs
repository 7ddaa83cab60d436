//! `enclave-builder lint`, run as the real binary on small manifests. Digests come from
//! `sha256sum`, bytecode from the real `python3 -m py_compile`, wheels from Python's
//! `zipfile`, OCI layouts from `umoci`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::run;

const EXIT_LINT: i32 = 7;

/// A temporary directory holding a manifest and its inputs.
struct Case {
    dir: tempfile::TempDir,
}

/// What one run of `enclave-builder lint` gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", self.stdout))
    }

    /// The one finding of `rule` in the `--json` report of a run that failed with
    /// [`EXIT_LINT`] (asserting both).
    fn only(&self, rule: &str) -> Value {
        assert_eq!(self.code, EXIT_LINT, "{self:?}");
        let found = with_rule(&self.json(), rule);
        assert_eq!(found.len(), 1, "one {rule} finding: {self:?}");
        found[0].clone()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The digest `sha256sum` prints for `path`.
fn sha256sum(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    let hex = out.split_whitespace().next().unwrap().to_owned();
    assert_eq!(hex.len(), 64, "{out}");
    hex
}

/// A tar of regular files (mode 0644, mtime 0).
fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Compiles `source` with the real `py_compile` (`mode` is a `PycInvalidationMode` name, or
/// `None` for the default, which is TIMESTAMP when SOURCE_DATE_EPOCH is unset) and returns
/// the bytecode.
fn py_compile(dir: &Path, source: &str, mode: Option<&str>) -> Vec<u8> {
    let py = dir.join("m.py");
    fs_err::write(&py, source).unwrap();
    let script = match mode {
        None => {
            "import py_compile,sys; print(py_compile.compile(sys.argv[1], doraise=True))".to_owned()
        }
        Some(m) => format!(
            "import py_compile,sys; print(py_compile.compile(sys.argv[1], doraise=True, \
             invalidation_mode=py_compile.PycInvalidationMode.{m}))"
        ),
    };
    let out = run(Command::new("python3")
        .args(["-c", &script])
        .arg(&py)
        .env_remove("SOURCE_DATE_EPOCH"));
    let pyc = fs_err::read(out.trim()).unwrap();
    fs_err::remove_file(out.trim()).unwrap();
    pyc
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("vmlinuz"), b"not really a kernel").unwrap();
        fs_err::write(dir.path().join("OVMF.fd"), b"not really firmware").unwrap();
        Case { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an input and returns its sha256 as `sha256sum` computes it.
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).unwrap();
        }
        fs_err::write(&path, bytes).unwrap();
        sha256sum(&path)
    }

    /// Writes `manifest.toml` with `rootfs` as the body of `[rootfs]` and pinned boot files.
    fn manifest(&self, rootfs: &str) -> PathBuf {
        let kernel = sha256sum(&self.path("vmlinuz"));
        let firmware = sha256sum(&self.path("OVMF.fd"));
        let text = format!(
            "schema = 1\n[image]\nname = \"t\"\nversion = \"1\"\nsource_date_epoch = 0\n\
             [rootfs]\n{rootfs}\n[boot]\n\
             kernel = {{ path = \"vmlinuz\", sha256 = \"{kernel}\" }}\n\
             firmware = {{ path = \"OVMF.fd\", sha256 = \"{firmware}\" }}\n"
        );
        let path = self.path("manifest.toml");
        fs_err::write(&path, text).unwrap();
        path
    }

    fn lint(&self, rootfs: &str, json: bool) -> Run {
        let manifest = self.manifest(rootfs);
        let mut cmd = crate::util::bin();
        cmd.arg("lint").arg(&manifest);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().expect("killed by a signal"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

/// The findings of a `--json` run with the given rule.
fn with_rule(report: &Value, rule: &str) -> Vec<Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .cloned()
        .collect()
}

#[test]
fn unpinned_tar_layer_fails_with_the_digest_to_pin() {
    let case = Case::new();
    let digest = case.write(
        "layers/extra.tar",
        &tar(&[("usr/bin/tool", b"#!/bin/sh\n")]),
    );
    let r = case.lint("layers = [{ tar = \"layers/extra.tar\" }]", false);
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    let line =
        format!("error: rootfs.layers[0]: layers/extra.tar: not pinned; add sha256 = \"{digest}\"");
    assert!(r.stdout.contains(&line), "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("  fix: sha256 = \"{digest}\"\n")),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("1 error(s), 0 warning(s), 0 note(s)"),
        "{r:?}"
    );
    // Pinning it as told makes the lint pass.
    let r = case.lint(
        &format!("layers = [{{ tar = \"layers/extra.tar\", sha256 = \"{digest}\" }}]"),
        false,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .ends_with("0 error(s), 0 warning(s), 0 note(s); lint passed\n"),
        "{r:?}"
    );
}

#[test]
fn wrong_pin_names_expected_and_found() {
    let case = Case::new();
    let found = case.write("a.tar", &tar(&[("etc/motd", b"hello\n")]));
    let expected = case.write("other", b"other bytes");
    let r = case.lint(
        &format!("layers = [{{ tar = \"a.tar\", sha256 = \"{expected}\" }}]"),
        false,
    );
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "sha256 mismatch: the manifest pins {expected} but the file has {found}"
        )),
        "{r:?}"
    );
}

#[test]
fn unpinned_boot_files_and_missing_inputs() {
    let case = Case::new();
    let digest = case.write("disk/model.bin", b"weights");
    let rootfs = "layers = []\n\
                  files = [{ path = \"/opt/model.bin\", source = \"disk/model.bin\", mode = 0o644 },\n\
                           { path = \"/opt/gone\", source = \"nowhere/gone.bin\", sha256 = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\", mode = 0o644 }]";
    let r = case.lint(rootfs, true);
    let unpinned = r.only("unpinned");
    assert_eq!(unpinned["field"], "rootfs.files[0]");
    assert_eq!(unpinned["fix"], format!("sha256 = \"{digest}\""));
    let missing = r.only("input-missing");
    assert_eq!(missing["field"], "rootfs.files[1]");
    assert_eq!(missing["input"], "nowhere/gone.bin");
}

#[test]
fn timestamp_pyc_in_a_layer_is_an_error() {
    let case = Case::new();
    let pyc = py_compile(case.dir.path(), "X = 1\n", None);
    // The fixture is what PEP 552 calls timestamp-based: flags word 0.
    assert_eq!(&pyc[4..8], &[0, 0, 0, 0]);
    let name = "usr/lib/python3/__pycache__/m.cpython-3.pyc";
    let layer = tar(&[("usr/lib/python3/m.py", b"X = 1\n"), (name, &pyc)]);
    // gzip-compressed by the real gzip, so the layer is read through the decompressor.
    fs_err::write(case.path("py.tar"), &layer).unwrap();
    run(Command::new("gzip")
        .args(["-n", "-9"])
        .arg(case.path("py.tar")));
    let digest = sha256sum(&case.path("py.tar.gz"));
    let r = case.lint(
        &format!("layers = [{{ tar = \"py.tar.gz\", sha256 = \"{digest}\" }}]"),
        true,
    );
    let found = r.only("pyc-timestamp");
    assert_eq!(found["severity"], "error");
    assert_eq!(found["path"], format!("/{name}"));
    let mtime = u32::from_le_bytes(pyc[8..12].try_into().unwrap());
    assert!(
        found["message"]
            .as_str()
            .unwrap()
            .contains(&format!("source mtime {mtime}")),
        "{r:?}"
    );
    assert_eq!(r.json()["errors"], 1);
}

#[test]
fn hash_based_pyc_is_fine() {
    for mode in ["CHECKED_HASH", "UNCHECKED_HASH"] {
        let case = Case::new();
        let pyc = py_compile(case.dir.path(), "X = 1\n", Some(mode));
        let digest = case.write(
            "py.tar",
            &tar(&[("usr/lib/python3/__pycache__/m.cpython-3.pyc", &pyc)]),
        );
        let r = case.lint(
            &format!("layers = [{{ tar = \"py.tar\", sha256 = \"{digest}\" }}]"),
            true,
        );
        assert_eq!(r.code, 0, "{mode}: {r:?}");
        let report = r.json();
        assert_eq!(report["errors"], 0, "{mode}: {r:?}");
        assert_eq!(with_rule(&report, "pyc-hash").len(), 1, "{mode}: {r:?}");
    }
}

#[test]
fn more_timestamp_pycs_than_listed_are_counted() {
    let case = Case::new();
    let pyc = py_compile(case.dir.path(), "X = 1\n", None);
    let names: Vec<String> = (0..13)
        .map(|i| format!("app/__pycache__/m{i:02}.pyc"))
        .collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), pyc.as_slice())).collect();
    let digest = case.write("py.tar", &tar(&entries));
    let r = case.lint(
        &format!("layers = [{{ tar = \"py.tar\", sha256 = \"{digest}\" }}]"),
        true,
    );
    let report = r.json();
    let found = with_rule(&report, "pyc-timestamp");
    assert_eq!(found.len(), 11, "{r:?}");
    assert!(
        found[10]["message"]
            .as_str()
            .unwrap()
            .starts_with("3 more timestamp-based .pyc file(s) (13 in all"),
        "{r:?}"
    );
}

#[test]
fn machine_id_in_a_layer_is_flagged_and_an_empty_one_is_not() {
    let case = Case::new();
    let digest = case.write(
        "etc.tar",
        &tar(&[
            ("./etc/machine-id", b"0123456789abcdef0123456789abcdef\n"),
            ("./etc/ssh/ssh_host_ed25519_key", b"secret"),
            ("./var/log/apt/history.log", b"Start-Date: 2026-11-25\n"),
            ("./etc/hostname", b"buildbox\n"),
        ]),
    );
    let r = case.lint(
        &format!("layers = [{{ tar = \"etc.tar\", sha256 = \"{digest}\" }}]"),
        true,
    );
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    let report = r.json();
    let host: Vec<(String, String)> = with_rule(&report, "host-file")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |p: &str, s: &str| (p.to_owned(), s.to_owned());
    assert_eq!(
        host,
        [
            expect("/etc/machine-id", "error"),
            expect("/etc/ssh/ssh_host_ed25519_key", "error"),
            expect("/var/log/apt/history.log", "warning"),
            expect("/etc/hostname", "note"),
        ],
        "{r:?}"
    );
    assert_eq!(
        (&report["errors"], &report["warnings"], &report["notes"]),
        (&2.into(), &1.into(), &1.into())
    );

    let digest = case.write("empty.tar", &tar(&[("etc/machine-id", b"")]));
    let r = case.lint(
        &format!("layers = [{{ tar = \"empty.tar\", sha256 = \"{digest}\" }}]"),
        false,
    );
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn absolute_host_path_source_is_flagged() {
    let case = Case::new();
    let digest = sha256sum(Path::new("/etc/hostname"));
    let r = case.lint(
        &format!(
            "layers = []\nfiles = [{{ path = \"/etc/hostname\", source = \"/etc/hostname\", \
             sha256 = \"{digest}\", mode = 0o644 }}]"
        ),
        true,
    );
    let found = r.only("host-path");
    assert_eq!(found["field"], "rootfs.files[0]");
    assert_eq!(found["input"], "/etc/hostname");
}

#[test]
fn clean_manifest_passes() {
    let case = Case::new();
    let digest = case.write("base.tar", &tar(&[("usr/bin/app", b"\x7fELF")]));
    let file = case.write("files/app.toml", b"port = 80\n");
    let r = case.lint(
        &format!(
            "layers = [{{ tar = \"base.tar\", sha256 = \"{digest}\" }}]\n\
             files = [{{ path = \"/etc/app.toml\", source = \"files/app.toml\", sha256 = \"{file}\", mode = 0o644 }}]"
        ),
        false,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        format!(
            "{}: 0 error(s), 0 warning(s), 0 note(s); lint passed\n",
            case.path("manifest.toml").display()
        )
    );
}

#[test]
fn json_report_has_every_field() {
    let case = Case::new();
    let digest = case.write("extra.tar", &tar(&[("etc/machine-id", b"abc\n")]));
    let r = case.lint("layers = [{ tar = \"extra.tar\" }]", true);
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    let report = r.json();
    assert_eq!(report["schema"], "enclave-builder.lint.v1");
    assert_eq!(report["errors"], 2);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{r:?}");
    for f in findings {
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["severity", "rule", "field", "input", "layer", "path", "message", "fix"]
        );
    }
    assert_eq!(findings[0]["rule"], "unpinned");
    assert_eq!(findings[0]["path"], Value::Null);
    assert_eq!(findings[0]["fix"], format!("sha256 = \"{digest}\""));
    assert_eq!(findings[1]["rule"], "host-file");
    assert_eq!(findings[1]["path"], "/etc/machine-id");
}

/// A wheel written by Python's `zipfile`.
fn wheel(case: &Case, name: &str, members: &[(&str, &[u8])]) -> String {
    let mut script = String::from("import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\n");
    for (i, (member, _)) in members.iter().enumerate() {
        let src = case.path(&format!("member{i}"));
        fs_err::write(&src, members[i].1).unwrap();
        script.push_str(&format!(
            "z.write({:?}, {member:?})\n",
            src.to_str().unwrap()
        ));
    }
    script.push_str("z.close()\n");
    run(Command::new("python3")
        .args(["-c", &script])
        .arg(case.path(name)));
    sha256sum(&case.path(name))
}

#[test]
fn wheels_with_timestamp_pyc_or_sources() {
    let case = Case::new();
    let pyc = py_compile(case.dir.path(), "Y = 2\n", None);
    let bad = wheel(
        &case,
        "bad-1.0-py3-none-any.whl",
        &[
            ("bad/__init__.py", b"Y = 2\n"),
            ("bad/__pycache__/__init__.cpython-311.pyc", &pyc),
        ],
    );
    let src = wheel(
        &case,
        "src-1.0-py3-none-any.whl",
        &[("src/__init__.py", b"Z = 3\n"), ("src/util.py", b"W = 4\n")],
    );
    let r = case.lint(
        &format!(
            "layers = []\nwheels = [\
             {{ wheel = \"bad-1.0-py3-none-any.whl\", sha256 = \"{bad}\", into = \"/usr/lib/python3/site-packages\" }},\
             {{ wheel = \"src-1.0-py3-none-any.whl\", sha256 = \"{src}\" }}]"
        ),
        true,
    );
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    let report = r.json();
    let ts = with_rule(&report, "pyc-timestamp");
    assert_eq!(ts.len(), 1, "{r:?}");
    assert_eq!(ts[0]["field"], "rootfs.wheels[0]");
    assert_eq!(
        ts[0]["path"],
        "/usr/lib/python3/site-packages/bad/__pycache__/__init__.cpython-311.pyc"
    );
    let notes = with_rule(&report, "wheel-sources");
    assert_eq!(notes.len(), 1, "{r:?}");
    assert_eq!(notes[0]["field"], "rootfs.wheels[1]");
    assert_eq!(notes[0]["severity"], "note");
    assert!(notes[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("2 Python source file(s)"));
}

#[test]
fn rust_workspace_needs_cargo_lock() {
    let case = Case::new();
    case.write("ws/Cargo.toml", b"[workspace]\n");
    case.write(
        "ws/rust-toolchain.toml",
        b"[toolchain]\nchannel = \"1.95.0\"\n",
    );
    let rootfs = "layers = []\nrust = [{ workspace = \"ws\", package = \"p\", bin = \"p\", path = \"/bin/p\" }]";
    let r = case.lint(rootfs, true);
    assert_eq!(r.only("cargo-lock-missing")["input"], "ws");
    case.write("ws/Cargo.lock", b"version = 4\n");
    let r = case.lint(rootfs, false);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn oci_layout_from_umoci() {
    let case = Case::new();
    let layout = case.path("oci");
    let pyc = py_compile(case.dir.path(), "V = 5\n", None);
    fs_err::write(case.path("mid"), b"0123456789abcdef0123456789abcdef\n").unwrap();
    fs_err::write(case.path("m.pyc"), &pyc).unwrap();
    let umoci = |args: &[&str]| {
        run(Command::new("umoci")
            .args(args)
            .current_dir(case.dir.path()));
    };
    umoci(&["init", "--layout", "oci"]);
    umoci(&["new", "--image", "oci:t"]);
    umoci(&["insert", "--image", "oci:t", "mid", "/etc/machine-id"]);
    umoci(&[
        "insert",
        "--image",
        "oci:t",
        "m.pyc",
        "/app/__pycache__/m.cpython-311.pyc",
    ]);
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();

    // Unpinned: the message lists what index.json holds, and the fix is the line to add.
    let r = case.lint("layers = [{ oci = \"oci\" }]", true);
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    let report = r.json();
    let unpinned = with_rule(&report, "unpinned");
    assert_eq!(unpinned[0]["fix"], format!("manifest = \"{manifest}\""));
    assert!(unpinned[0]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("{manifest} (t)")));

    // Pinned: each layer is scanned, and findings name the layer (umoci's gzip blobs).
    let r = case.lint(
        &format!("layers = [{{ oci = \"oci\", manifest = \"{manifest}\" }}]"),
        true,
    );
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    let report = r.json();
    let layers: Vec<String> = serde_json::from_slice::<Value>(
        &fs_err::read(
            layout
                .join("blobs/sha256")
                .join(manifest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap()["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(layers.len(), 2);
    let host = with_rule(&report, "host-file");
    assert_eq!(host.len(), 1, "{r:?}");
    assert_eq!(host[0]["layer"], layers[0].as_str());
    assert_eq!(host[0]["path"], "/etc/machine-id");
    let ts = with_rule(&report, "pyc-timestamp");
    assert_eq!(ts.len(), 1, "{r:?}");
    assert_eq!(ts[0]["layer"], layers[1].as_str());
    assert_eq!(ts[0]["path"], "/app/__pycache__/m.cpython-311.pyc");

    // A pin naming no image in the layout.
    let wrong = format!("sha256:{}", "1".repeat(64));
    let r = case.lint(
        &format!("layers = [{{ oci = \"oci\", manifest = \"{wrong}\" }}]"),
        true,
    );
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    assert_eq!(with_rule(&r.json(), "pin-mismatch").len(), 1, "{r:?}");
}

#[test]
fn unparsable_manifest_is_refused() {
    let case = Case::new();
    let r = case.lint("layers = [{ tar = \"a.tar\", bogus = 1 }]", false);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot lint the manifest"), "{r:?}");
}

#[test]
fn later_layers_and_files_replace_earlier_findings() {
    let case = Case::new();
    let pyc = py_compile(case.dir.path(), "X = 1\n", None);
    let lower = case.write(
        "lower.tar",
        &tar(&[
            ("etc/machine-id", b"0123456789abcdef0123456789abcdef\n"),
            (
                "var/lib/dbus/machine-id",
                b"0123456789abcdef0123456789abcdef\n",
            ),
            ("app/__pycache__/a.cpython-311.pyc", &pyc),
            ("srv/__pycache__/b.cpython-311.pyc", &pyc),
        ]),
    );
    // A whiteout, an opaque directory that also brings its own stale bytecode (which stays:
    // an opaque directory hides only the lower layers), and nothing for /srv.
    let upper = case.write(
        "upper.tar",
        &tar(&[
            ("etc/.wh.machine-id", b""),
            ("app/.wh..wh..opq", b""),
            ("app/__pycache__/c.cpython-311.pyc", &pyc),
        ]),
    );
    let empty = case.write("empty", b"");
    let r = case.lint(
        &format!(
            "layers = [{{ tar = \"lower.tar\", sha256 = \"{lower}\" }}, \
                       {{ tar = \"upper.tar\", sha256 = \"{upper}\" }}]\n\
             files = [{{ path = \"/var/lib/dbus/machine-id\", source = \"empty\", \
                         sha256 = \"{empty}\", mode = 0o444 }}]"
        ),
        true,
    );
    assert_eq!(r.code, EXIT_LINT, "{r:?}");
    let report = r.json();
    let left: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let at = |field: &str, path: &str| (field.to_owned(), path.to_owned());
    assert_eq!(
        left,
        [
            at("rootfs.layers[0]", "/srv/__pycache__/b.cpython-311.pyc"),
            at("rootfs.layers[1]", "/app/__pycache__/c.cpython-311.pyc"),
        ],
        "{r:?}"
    );
}

//! Test support shared by the `measurements` and `enclave-builder` suites: the fixtures
//! directory, running a reference tool (and `systemd-measure`), scratch directories and
//! Debian's signed kernel extracted from its fixture package. `measurements/tests/util.rs`
//! declares it as a module; `builder/tests/util.rs` includes this same file with `#[path]`
//! (one copy, two suites).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fixtures directory: the workspace's `../shared/fixtures` (`../shared/fixtures/README.md`
/// lists what is there and where it came from).
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// A file under [`fixtures`].
pub(crate) fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

/// A per-test scratch directory (created empty) under cargo's target tmpdir, named by the
/// package under test so the two suites never share one.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(concat!(env!("CARGO_PKG_NAME"), "-scratch"))
        .join(name);
    let _ = fs_err::remove_dir_all(&d);
    fs_err::create_dir_all(&d).unwrap();
    d
}

/// Runs `cmd`, asserts success, returns stdout.
pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Path of Debian's signed `vmlinuz` extracted (once per process) from the kernel fixture.
pub(crate) fn debian_kernel() -> &'static Path {
    static K: OnceLock<PathBuf> = OnceLock::new();
    K.get_or_init(|| {
        // Extracted once into a private directory, then renamed into place (atomic, so
        // test binaries running in parallel, of either suite, never see a partial file).
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-kernel");
        let kernel = root.join("vmlinuz-6.1.0-56-cloud-amd64");
        if !kernel.exists() {
            let tmp = root.join(format!("tmp-{}-{}", env!("CARGO_PKG_NAME"), std::process::id()));
            let _ = fs_err::remove_dir_all(&tmp);
            fs_err::create_dir_all(&tmp).unwrap();
            // Only the kernel: `dpkg-deb -x` would also unpack ~100 MB of modules.
            let deb = fixture("kernel/linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb");
            run(Command::new("sh")
                .arg("-c")
                .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -xf - -C \"$2\" ./boot/vmlinuz-6.1.0-56-cloud-amd64")
                .arg("sh")
                .arg(&deb)
                .arg(&tmp));
            let _ = fs_err::rename(tmp.join("boot/vmlinuz-6.1.0-56-cloud-amd64"), &kernel);
            let _ = fs_err::remove_dir_all(&tmp);
        }
        kernel
    })
}

/// `systemd-measure calculate --json=short` for the given `--flag=path` sections: per bank, the
/// four cumulative phase values.
pub(crate) fn systemd_measure(sections: &[(&str, &Path)]) -> serde_json::Value {
    let mut cmd = Command::new("/usr/lib/systemd/systemd-measure");
    cmd.args([
        "calculate",
        "--json=short",
        "--bank=sha256",
        "--bank=sha384",
    ]);
    for (flag, path) in sections {
        cmd.arg(format!("--{flag}={}", path.display()));
    }
    serde_json::from_str(&run(&mut cmd)).unwrap()
}

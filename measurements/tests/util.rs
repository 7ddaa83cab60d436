//! Test helpers: fixture paths, a once-per-process kernel extraction, reference-tool runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A file under `/work/shared/fixtures` (the workspace's `../shared/fixtures`).
pub(crate) fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(rel)
}

/// A per-test scratch directory under cargo's target tmpdir (created empty).
pub(crate) fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("measurements-tdxtpm")
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
        // test binaries running in parallel never see a partial file).
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("measurements-tdxtpm-kernel");
        let kernel = root.join("vmlinuz-6.1.0-56-cloud-amd64");
        if !kernel.exists() {
            let tmp = root.join(format!("tmp-{}", std::process::id()));
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

/// Parses `key=value` lines.
pub(crate) fn key_values(s: &str) -> Vec<(String, String)> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The value of `key` in `key=value` / `key = "value"` lines.
pub(crate) fn value_of(s: &str, key: &str) -> String {
    key_values(s)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no {key} in:\n{s}"))
}

/// The Authenticode digest osslsigncode computes for `pe` in `alg` (`sha256`/`sha384`): the
/// PE is stripped of any signature, signed with a throwaway key using that digest, and the
/// `Current message digest` (the one stored in the new signature) is read back.
pub(crate) fn osslsigncode_digest(pe: &Path, alg: &str, dir: &Path) -> String {
    let stem = pe.file_name().unwrap().to_string_lossy();
    let unsigned = dir.join(format!("{stem}-unsigned-{alg}.efi"));
    let signed = dir.join(format!("{stem}-signed-{alg}.efi"));
    for f in [&unsigned, &signed] {
        let _ = fs_err::remove_file(f);
    }
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    if !key.exists() {
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert));
    }
    // remove-signature fails on an unsigned image; fall back to a plain copy.
    let removed = Command::new("osslsigncode")
        .arg("remove-signature")
        .arg("-in")
        .arg(pe)
        .arg("-out")
        .arg(&unsigned)
        .output()
        .unwrap();
    if !removed.status.success() {
        fs_err::copy(pe, &unsigned).unwrap();
    }
    run(Command::new("osslsigncode")
        .args(["sign", "-h", alg, "-certs"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .arg("-in")
        .arg(&unsigned)
        .arg("-out")
        .arg(&signed));
    let out = Command::new("osslsigncode")
        .arg("verify")
        .arg("-in")
        .arg(&signed)
        .output()
        .unwrap();
    signature_digest(&String::from_utf8_lossy(&out.stdout))
}

/// The `Current message digest` line of `osslsigncode verify` output, lowercase.
pub(crate) fn signature_digest(verify_output: &str) -> String {
    verify_output
        .lines()
        .find_map(|l| l.strip_prefix("Current message digest"))
        .and_then(|l| l.split(':').nth(1))
        .map(|d| d.trim().to_ascii_lowercase())
        .unwrap_or_else(|| panic!("no digest in osslsigncode output:\n{verify_output}"))
}

//! Test helpers: fixture paths, a once-per-process kernel extraction, reference-tool runs
//! (the first three shared with the builder's suite, in `support.rs`).

use std::path::Path;
use std::process::Command;

#[path = "support.rs"]
mod support;
pub(crate) use support::{debian_kernel, fixture, run, scratch, systemd_measure};

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
        .args(["remove-signature".as_ref(), "-in".as_ref(), pe.as_os_str()])
        .args(["-out".as_ref(), unsigned.as_os_str()])
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
        .args(["verify".as_ref(), "-in".as_ref(), signed.as_os_str()])
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

//! Values with rules are refused when the manifest is loaded (STYLE 17): exit 3, a message
//! naming the field, before any input is read (the manifest's inputs do not exist here: a
//! build that read one would complain about it instead), and nothing left in the output's
//! directory.

use std::path::Path;

/// A manifest with `image` and `rootfs` sections as given and `boot` lines added to its
/// `[boot]`; its inputs do not exist.
fn manifest(dir: &Path, epoch: &str, rootfs: &str, boot: &str) -> std::path::PathBuf {
    let text = format!(
        "schema = 1\n[image]\nname = \"t\"\nversion = \"1\"\nsource_date_epoch = {epoch}\n\
         [rootfs]\nlayers = []\n{rootfs}\n[boot]\n\
         kernel = {{ path = \"missing-vmlinuz\" }}\nfirmware = {{ path = \"missing-OVMF.fd\" }}\n\
         {boot}"
    );
    let path = dir.join("m.toml");
    fs_err::write(&path, text).unwrap();
    path
}

/// Runs `build` and checks the refusal; returns stderr.
fn refused(epoch: &str, rootfs: &str, needles: &[&str]) -> String {
    refused_boot(epoch, rootfs, "", needles)
}

/// [`refused`], with `boot` lines in `[boot]`.
fn refused_boot(epoch: &str, rootfs: &str, boot: &str, needles: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(tmp.path(), epoch, rootfs, boot);
    let out = crate::util::bin()
        .arg("build")
        .arg(&m)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--quiet")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "expected exit 3:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr does not mention {n:?}:\n{err}");
    }
    assert!(
        !err.contains("missing-vmlinuz"),
        "an input was read before the manifest was refused:\n{err}"
    );
    let left: Vec<String> = fs_err::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "m.toml")
        .collect();
    assert!(left.is_empty(), "a refused build left {left:?}");
    err
}

#[test]
fn a_mode_with_file_type_bits_is_refused() {
    refused(
        "0",
        "[[rootfs.files]]\npath = \"/etc/a\"\nsource = \"a\"\nmode = 0o100644\n",
        &[
            "rootfs.files[0].mode: ",
            "mode = 0o100644",
            "0o100644 has bits beyond 0o7777",
            "e.g. 0o644",
        ],
    );
}

#[test]
fn a_rust_component_path_with_dotdot_is_refused() {
    refused(
        "0",
        "[[rootfs.rust]]\nworkspace = \".\"\npackage = \"p\"\nbin = \"b\"\npath = \"/usr/../../x\"\n",
        &["rootfs.rust[0].path: ", "path = \"/usr/../../x\"", "`..` component"],
    );
    // The same rule for every image path: files, too; and a name EROFS cannot hold.
    refused(
        "0",
        "[[rootfs.files]]\npath = \"etc/a\"\nsource = \"a\"\nmode = 0o644\n",
        &["rootfs.files[0].path: ", "path = \"etc/a\"", "not absolute"],
    );
    let long = format!("/{}", "n".repeat(256));
    refused(
        "0",
        &format!("[[rootfs.files]]\npath = \"{long}\"\nsource = \"a\"\nmode = 0o644\n"),
        &["256-byte component", "at most 255 bytes"],
    );
}

/// `[boot] init` names a file in the image: the same rule as every other image path.
#[test]
fn a_boot_init_that_is_not_an_image_path_is_refused() {
    refused_boot(
        "0",
        "",
        "init = \"sbin/init\"\n",
        &["boot.init: ", "init = \"sbin/init\"", "not absolute"],
    );
    refused_boot(
        "0",
        "",
        "init = \"/sbin/../init\"\n",
        &["boot.init: ", "`..` component"],
    );
}

#[test]
fn an_epoch_newc_cannot_hold_is_refused() {
    refused(
        "4294967296",
        "",
        &[
            "image.source_date_epoch: ",
            "source_date_epoch = 4294967296",
            "32-bit mtime",
            "4294967295",
        ],
    );
}

/// `verify` refuses a record in another format before it rebuilds anything: the manifest's
/// inputs do not exist, so a rebuild would fail naming them instead.
#[test]
fn verify_checks_the_record_schema_before_rebuilding() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(tmp.path(), "0", "", "");
    for (record, shown) in [
        (
            r#"{"schema": "enclave-builder.record.v0"}"#,
            "\"enclave-builder.record.v0\"",
        ),
        (r#"{"inputs": []}"#, "(absent)"),
    ] {
        let r = tmp.path().join("record.json");
        fs_err::write(&r, record).unwrap();
        let out = crate::util::bin()
            .arg("verify")
            .arg(&m)
            .arg("--record")
            .arg(&r)
            .arg("--quiet")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.contains(&format!(
                "schema {shown} is not \"enclave-builder.record.v1\""
            )),
            "{err}"
        );
        assert!(!err.contains("missing-vmlinuz"), "it rebuilt first:\n{err}");
    }
}

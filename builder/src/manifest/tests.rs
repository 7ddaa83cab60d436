use super::*;

const MINIMAL: &str = r#"
schema = 1
[image]
name = "t"
version = "1"
source_date_epoch = 1700000000
[[rootfs.layers]]
oci = "layout"
manifest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
[[rootfs.layers]]
tar = "extra.tar"
[[rootfs.files]]
path = "/etc/motd"
source = "motd"
mode = 0o644
[boot]
kernel = { path = "vmlinuz", sha256 = "51349501a3d1ff83836437d2b365fd2d57f2feb8642d315e5181dec23d4c3275" }
firmware = { path = "OVMF.fd" }
cmdline = "console=ttyS0"
"#;

#[test]
fn parses_minimal_manifest() {
    let m = parse(MINIMAL, "t.toml").unwrap();
    assert_eq!(m.rootfs.layers.len(), 2);
    assert!(matches!(
        &m.rootfs.layers[0],
        LayerSource::Oci {
            manifest: Some(_),
            ..
        }
    ));
    assert!(matches!(
        &m.rootfs.layers[1],
        LayerSource::Tar { sha256: None, .. }
    ));
    assert_eq!(m.rootfs.files[0].mode.bits(), 0o644);
    assert_eq!(m.boot.root_device, "/dev/vda");
    assert!(m.boot.firmware.sha256.is_none());
}

#[test]
fn rejects_unknown_fields_with_position() {
    let text = MINIMAL.replace("cmdline = ", "cmdlin = ");
    let err = parse(&text, "t.toml").unwrap_err().to_string();
    assert!(err.contains("t.toml") && err.contains("cmdlin"), "{err}");
}

#[test]
fn rejects_bad_digest_and_schema() {
    let text = MINIMAL.replace("sha256:0000", "sha256:zz00");
    let err = parse(&text, "t.toml").unwrap_err().to_string();
    assert!(err.contains("hexadecimal"), "{err}");
    let text = MINIMAL.replace("schema = 1", "schema = 7");
    assert!(matches!(
        parse(&text, "t.toml"),
        Err(Error::Schema { found: 7, .. })
    ));
}

#[test]
fn rejects_mode_and_path_out_of_range() {
    let text = MINIMAL.replace("mode = 0o644", "mode = 0o100644");
    assert!(parse(&text, "t.toml")
        .unwrap_err()
        .to_string()
        .contains("rootfs.files[0].mode"));
    let text = MINIMAL.replace("\"/etc/motd\"", "\"/etc/../../x\"");
    assert!(parse(&text, "t.toml")
        .unwrap_err()
        .to_string()
        .contains("rootfs.files[0].path"));
}

#[test]
fn a_refused_value_names_its_field() {
    let text = format!(
        "{MINIMAL}\n[[disks]]\nname = \"a\"\nmount = \"/a\"\n[[disks]]\nname = \"b\"\nmount = \"/b\"\n\
         [[disks.files]]\npath = \"/x\"\nsource = \"x\"\nmode = 0o644\n\
         [[disks.files]]\npath = \"/y\"\nsource = \"y\"\nmode = 0o20000\n"
    );
    let err = parse(&text, "t.toml").unwrap_err().to_string();
    assert!(err.starts_with("t.toml: disks[1].files[1].mode: "), "{err}");
}

#[test]
fn snp_vcpus_is_one_count_or_a_list_of_distinct_counts() {
    let with = |vcpus: &str| {
        format!(
            "{MINIMAL}[[profiles]]\nname = \"snp\"\nplatform = \"snp\"\n\
             firmware = {{ path = \"OVMF.amdsev.fd\" }}\nvcpus = {vcpus}\nvcpu_type = \"EPYC-Milan\"\n"
        )
    };
    let counts = |vcpus: &str| match &parse(&with(vcpus), "t.toml").unwrap().profiles[0] {
        Profile::Snp(p) => p.vcpus.counts().iter().map(|n| n.get()).collect::<Vec<_>>(),
        other => panic!("not an SNP profile: {other:?}"),
    };
    assert_eq!(counts("4"), [4]);
    assert_eq!(counts("[1, 2, 4, 8, 16, 64]"), [1, 2, 4, 8, 16, 64]);
    assert_eq!(counts("[8, 1]"), [8, 1], "manifest order is kept");
    for (bad, needle) in [
        ("[]", "lists no vCPU count"),
        ("0", "0 is not a vCPU count"),
        ("[1, 0]", "0 is not a vCPU count"),
        ("[2, 4, 2]", "lists 2 twice"),
    ] {
        let err = format!("{:#}", parse(&with(bad), "t.toml").unwrap_err());
        assert!(
            err.contains(needle) && err.contains("vcpus"),
            "vcpus = {bad}: {err}"
        );
    }
}

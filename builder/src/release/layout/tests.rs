use super::*;

fn blob(name: &str, data: &[u8], kind: FileKind) -> Blob {
    Blob {
        title: name.parse().unwrap(),
        media_type: kind.media_type().to_owned(),
        digest: OciDigest::of(data),
        size: data.len() as u64,
    }
}

#[test]
fn empty_descriptor_is_the_specs() {
    // image-spec 1.1, manifest.md "Guidance for an Empty Descriptor".
    let d = empty_descriptor();
    assert_eq!(
        d.digest,
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(d.size, 2);
    assert_eq!(d.media_type, "application/vnd.oci.empty.v1+json");
}

#[test]
fn release_manifest_is_sorted_and_deterministic() {
    let a = blob("vmlinuz", b"kernel", FileKind::Kernel);
    let b = blob("record.json", b"{}", FileKind::Record);
    let c = blob("cmdline", b"console=ttyS0", FileKind::Cmdline);
    let one = release_manifest(&[a.clone(), b.clone(), c.clone()]);
    let two = release_manifest(&[c, a, b]);
    assert_eq!(one, two);
    let v: serde_json::Value = serde_json::from_slice(&one).unwrap();
    let titles: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["annotations"][TITLE_ANNOTATION].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["cmdline", "record.json", "vmlinuz"]);
    assert_eq!(v["artifactType"], RELEASE_ARTIFACT_TYPE);
    assert_eq!(v["config"]["mediaType"], EMPTY_MEDIA_TYPE);
    let digest = OciDigest::of(&one);
    let parsed = parse_release(&one, &digest).unwrap();
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[0].title.as_str(), "cmdline");
}

#[test]
fn titles_are_refused() {
    for bad in ["", ".", "..", "a/b", "../x", ".hidden", "a\nb", "x..y"] {
        assert!(bad.parse::<Title>().is_err(), "{bad:?} was accepted");
    }
    for good in ["record.json", "disk-model.img", "OVMF.fd", "run-qemu.sh"] {
        good.parse::<Title>().unwrap();
    }
}

#[test]
fn digests_are_strict() {
    let good = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    assert_eq!(good.parse::<OciDigest>().unwrap().to_string(), good);
    for bad in [
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A",
        "sha512:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "sha256:44136fa3",
    ] {
        assert!(bad.parse::<OciDigest>().is_err(), "{bad} was accepted");
    }
}

#[test]
fn hostile_release_manifests_are_refused() {
    let mk = |titles: &[&str]| {
        let layers: Vec<serde_json::Value> = titles
            .iter()
            .map(|t| {
                serde_json::json!({"mediaType": "x", "digest": OciDigest::of(t.as_bytes()).to_string(),
                    "size": 1, "annotations": {TITLE_ANNOTATION: t}})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": RELEASE_ARTIFACT_TYPE, "config": empty_descriptor(), "layers": layers
        }))
        .unwrap()
    };
    let d = OciDigest::of(b"x");
    assert!(parse_release(&mk(&["a", "b"]), &d).is_ok());
    let e = parse_release(&mk(&["a", "a"]), &d).unwrap_err();
    assert!(matches!(e, LayoutError::DuplicateTitle { .. }), "{e}");
    let e = parse_release(&mk(&["../etc/passwd"]), &d).unwrap_err();
    assert!(matches!(e, LayoutError::BadTitle { .. }), "{e}");
    let e = parse_release(&mk(&["sub/x"]), &d).unwrap_err();
    assert!(matches!(e, LayoutError::BadTitle { .. }), "{e}");
    assert!(parse_release(b"\xff\x00", &d).is_err());
    assert!(parse_release(b"{\"schemaVersion\": 2}", &d).is_err());
}

#[test]
fn envelope_kinds() {
    assert_eq!(
        EnvelopeKind::of("release.intoto.json"),
        Some(EnvelopeKind::Release)
    );
    assert_eq!(
        EnvelopeKind::of("rebuild-0a1b.intoto.json"),
        Some(EnvelopeKind::Rebuild)
    );
    assert_eq!(EnvelopeKind::of("rebuild-.intoto.json"), None);
    assert_eq!(EnvelopeKind::of("rebuild-XY.intoto.json"), None);
    assert_eq!(EnvelopeKind::of("other.intoto.json"), None);
}

#[test]
fn referrer_round_trip_and_tag_index() {
    let release = release_manifest(&[blob("record.json", b"{}", FileKind::Record)]);
    let subject = manifest_descriptor(&release, Some(RELEASE_ARTIFACT_TYPE));
    let env = Blob {
        title: "release.intoto.json".parse().unwrap(),
        media_type: DSSE_MEDIA_TYPE.to_owned(),
        digest: OciDigest::of(b"env"),
        size: 3,
    };
    let r = referrer_manifest(&subject, &env, EnvelopeKind::Release);
    let rd = OciDigest::of(&r);
    let sd = OciDigest::of(&release);
    let (kind, b) = parse_referrer(&r, &rd, &sd).unwrap();
    assert_eq!(kind, EnvelopeKind::Release);
    assert_eq!(b, env);
    assert!(parse_referrer(&r, &rd, &OciDigest::of(b"other")).is_err());

    let entry = manifest_descriptor(&r, Some(kind.artifact_type()));
    let tag = referrers_tag(&sd);
    assert_eq!(tag, format!("sha256-{}", sd.hex()));
    let one = add_referrer(None, entry.clone(), &tag).unwrap();
    let two = add_referrer(Some(&one), entry, &tag).unwrap();
    assert_eq!(
        one, two,
        "adding the same referrer twice must not list it twice"
    );
    let v: serde_json::Value = serde_json::from_slice(&two).unwrap();
    assert_eq!(v["mediaType"], INDEX_MEDIA_TYPE);
    assert_eq!(v["manifests"][0]["artifactType"], kind.artifact_type());
}

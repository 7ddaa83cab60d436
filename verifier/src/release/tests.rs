//! Known-answer tests: the DSSE spec's PAE example, RFC 8032's first Ed25519 vector.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let v = ::hex::decode(s).unwrap();
    v.try_into().unwrap()
}

/// secure-systems-lab/dsse `protocol.md`, "Test Vectors".
#[test]
fn pae_matches_the_dsse_spec_example() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
    // Lengths count bytes, not characters.
    assert_eq!(pae("t", "é".as_bytes()), "DSSEv1 1 t 2 é".as_bytes());
}

/// RFC 8032 section 7.1, TEST 1 (empty message).
const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC8032_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_SIG: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

#[test]
fn rfc8032_test_1_verifies_through_public_key() {
    let key = PublicKey::from_ed25519_bytes(&unhex::<32>(RFC8032_PUBLIC)).unwrap();
    assert_eq!(key.algorithm(), Algorithm::Ed25519);
    let sig = unhex::<64>(RFC8032_SIG);
    assert!(key.verify(b"", &sig));
    assert!(!key.verify(b"x", &sig), "another message must not verify");
    let mut bad = sig;
    bad[0] ^= 1;
    assert!(!key.verify(b"", &bad), "a flipped bit must not verify");
    assert!(
        !key.verify(b"", &sig[..63]),
        "a short signature must not verify"
    );
    // The SPKI round trip keeps the key and its fingerprint (RFC 8410 prefix + raw key).
    let der = key.spki_der();
    assert_eq!(::hex::encode(&der[..12]), "302a300506032b6570032100");
    assert_eq!(&der[12..], &unhex::<32>(RFC8032_PUBLIC));
    let again = PublicKey::from_spki_der(&der).unwrap();
    assert_eq!(again.fingerprint(), key.fingerprint());
    assert_eq!(
        key.fingerprint().to_string(),
        alloc::format!(
            "sha256:{}",
            ::hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&der))
        )
    );
}

#[test]
fn envelope_signed_with_the_rfc8032_key_verifies_and_a_corrupted_one_does_not() {
    let sk = ed25519_dalek::SigningKey::from_bytes(&unhex::<32>(RFC8032_SECRET));
    let pk = PublicKey::from_ed25519(sk.verifying_key());
    let fp = pk.fingerprint();
    let sign = |m: &[u8]| {
        use ed25519_dalek::Signer as _;
        sk.sign(m).to_bytes().to_vec()
    };
    let env = Envelope::sign(PAYLOAD_TYPE, b"{}", &[(fp, &sign)]);
    let parsed = Envelope::parse(&serde_json::to_vec(&env).unwrap()).unwrap();
    assert_eq!(parsed.verify(core::slice::from_ref(&pk)).verified, vec![fp]);
    let mut bad = parsed.clone();
    bad.payload = "e30K".into(); // "{}\n"
    let rep = bad.verify(core::slice::from_ref(&pk));
    assert!(rep.verified.is_empty());
    assert!(
        rep.rejected[0].contains("does not verify"),
        "{:?}",
        rep.rejected
    );
    assert!(parsed.verify(&[]).rejected[0].contains("not a trusted key"));
}

#[test]
fn fingerprints_parse_only_in_the_pinned_form() {
    let hex64 = "ab".repeat(32);
    let f: Fingerprint = alloc::format!("sha256:{hex64}").parse().unwrap();
    assert_eq!(f.hex(), hex64);
    assert_eq!(f.short(), "abababababababab");
    for bad in [
        hex64.clone(),
        alloc::format!("sha256:{}", &hex64[1..]),
        "sha256:zz".into(),
    ] {
        assert_eq!(
            bad.parse::<Fingerprint>(),
            Err(KeyError::FingerprintForm),
            "{bad}"
        );
    }
}

#[test]
fn envelopes_with_another_payload_type_or_no_signature_are_refused() {
    let e = br#"{"payload":"e30=","payloadType":"text/plain","signatures":[{"sig":"AA=="}]}"#;
    assert!(matches!(
        Envelope::parse(e),
        Err(EnvelopeError::PayloadType(_))
    ));
    let e = br#"{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[]}"#;
    assert_eq!(Envelope::parse(e), Err(EnvelopeError::Unsigned));
    let garbage: Vec<u8> = (0..=255).collect();
    assert!(matches!(
        Envelope::parse(&garbage),
        Err(EnvelopeError::Json(_))
    ));
}

/// A release in memory: two files and a record, signed by the RFC 8032 key as publisher.
struct Fixture {
    files: Vec<(alloc::string::String, Sha256)>,
    record: Vec<u8>,
    envelopes: Vec<(alloc::string::String, Vec<u8>)>,
    publisher: PublicKey,
}

fn fixture() -> Fixture {
    let sk = ed25519_dalek::SigningKey::from_bytes(&unhex::<32>(RFC8032_SECRET));
    let publisher = PublicKey::from_ed25519(sk.verifying_key());
    let sign = |m: &[u8]| {
        use ed25519_dalek::Signer as _;
        sk.sign(m).to_bytes().to_vec()
    };
    let img = Sha256::of(b"image bytes");
    let record = alloc::format!(
        r#"{{"outputs":[{{"name":"rootfs.img","size":11,"sha256":"{img}"}}],"measurements":[{{"profile":"snp","firmware_sha256":"00","platform":{{"kind":"snp","launch_digest":"ab"}}}}]}}"#
    )
    .into_bytes();
    let files = vec![
        ("record.json".to_string(), Sha256::of(&record)),
        ("rootfs.img".to_string(), img),
    ];
    let predicate: serde_json::Value = serde_json::from_slice(&record).unwrap();
    let st = Statement::new(&files, RELEASE_PREDICATE_TYPE, predicate);
    let env = Envelope::sign(
        PAYLOAD_TYPE,
        &serde_json::to_vec(&st).unwrap(),
        &[(publisher.fingerprint(), &sign)],
    );
    Fixture {
        files,
        record,
        envelopes: vec![(
            "release.intoto.json".into(),
            serde_json::to_vec(&env).unwrap(),
        )],
        publisher,
    }
}

fn run(f: &Fixture, policy: &Policy) -> ReleaseVerdict {
    check_release(
        &Release {
            files: &f.files,
            record: &f.record,
            envelopes: &f.envelopes,
            keys: &[],
        },
        policy,
    )
}

#[test]
fn check_release_accepts_the_signed_files_and_pins_the_signed_measurements() {
    let f = fixture();
    let policy = Policy {
        publisher_keys: vec![TrustedKey::Key(f.publisher.clone())],
        ..Policy::default()
    };
    let v = run(&f, &policy);
    assert!(v.passed, "{}", v.verdict);
    assert_eq!(v.measurements[0].values["launch_digest"], "ab");
    assert_eq!(v.measurements[0].values["firmware_sha256"], "00");

    // One byte of one file differs: that subject fails, by name.
    let mut g = fixture();
    g.files[1].1 = Sha256::of(b"image bytez");
    let v = run(&g, &policy);
    assert!(!v.passed);
    let failed: Vec<_> = v.verdict.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["subject rootfs.img"]);

    // An extra unsigned file fails; so does an empty policy (fails closed).
    let mut h = fixture();
    h.files.push(("extra".into(), Sha256::of(b"")));
    let v = run(&h, &policy);
    let failed: Vec<_> = v.verdict.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["subject extra"]);
    assert!(!run(&f, &Policy::default()).passed);

    // No envelope at all.
    let mut e = fixture();
    e.envelopes.clear();
    let v = run(&e, &policy);
    assert_eq!(
        v.verdict.failures().next().unwrap().name,
        "release.statement"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    /// Any change to the signed envelope's bytes either makes it unreadable or fails the
    /// verdict; nothing panics (the fuzz target in verifier/fuzz goes further).
    #[test]
    fn a_mutated_envelope_never_passes_and_never_panics(
        edits in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8),
    ) {
        let f = fixture();
        let policy = Policy {
            publisher_keys: vec![TrustedKey::Key(f.publisher.clone())],
            ..Policy::default()
        };
        let mut g = fixture();
        let bytes = &mut g.envelopes[0].1;
        let original = bytes.clone();
        for (at, b) in edits {
            let len = bytes.len();
            if let Some(x) = bytes.get_mut(at % len) {
                *x = b;
            }
        }
        let v = run(&g, &policy);
        // JSON allows some harmless edits (whitespace, key-order-free): those must decode to
        // the same envelope to pass.
        if v.passed {
            let a = Envelope::parse(&original).unwrap();
            let b = Envelope::parse(&g.envelopes[0].1).unwrap();
            proptest::prop_assert_eq!(a.payload().unwrap(), b.payload().unwrap());
        }
        let _ = run(&f, &policy);
    }
}

#[test]
fn a_publisher_key_does_not_count_as_its_own_rebuilder() {
    let mut f = fixture();
    let sk = ed25519_dalek::SigningKey::from_bytes(&unhex::<32>(RFC8032_SECRET));
    let sign = |m: &[u8]| {
        use ed25519_dalek::Signer as _;
        sk.sign(m).to_bytes().to_vec()
    };
    let predicate = serde_json::json!({
        "result": "identical",
        "published_record_sha256": Sha256::of(&f.record).to_string(),
    });
    let st = Statement::new(&f.files, REBUILD_PREDICATE_TYPE, predicate);
    let env = Envelope::sign(
        PAYLOAD_TYPE,
        &serde_json::to_vec(&st).unwrap(),
        &[(f.publisher.fingerprint(), &sign)],
    );
    f.envelopes.push((
        "rebuild-x.intoto.json".into(),
        serde_json::to_vec(&env).unwrap(),
    ));
    let key = TrustedKey::Key(f.publisher.clone());
    let policy = Policy {
        publisher_keys: vec![key.clone()],
        rebuilder_keys: vec![key],
        rebuilders_required: 1,
        ..Policy::default()
    };
    let v = run(&f, &policy);
    assert!(!v.passed, "{}", v.verdict);
    let text = v.verdict.to_string();
    assert!(text.contains("cannot count as a rebuilder"), "{text}");
    assert!(text.contains("FAIL rebuilders: expected at least 1 distinct trusted rebuilder(s), actual 0 of 1 required"), "{text}");
    // The same statement counts when the key is only a rebuilder's.
    let other = PublicKey::from_ed25519_bytes(&unhex::<32>(
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    ))
    .unwrap();
    let policy = Policy {
        publisher_keys: vec![TrustedKey::Key(other)],
        rebuilder_keys: vec![TrustedKey::Key(f.publisher.clone())],
        rebuilders_required: 1,
        ..Policy::default()
    };
    let v = run(&f, &policy);
    assert!(
        v.verdict
            .to_string()
            .contains("ok   rebuilders: 1 of 1 required; missing: none"),
        "{}",
        v.verdict
    );
}

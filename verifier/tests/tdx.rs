//! TDX: a real quote with its collateral (dcap-qvl's sample) for the signature path, and
//! parsed-and-modified bodies for each named body check.

use proptest::prelude::*;
use verifier::tdx::{self, TdBody, TdxPolicy, TdxRelease};

use crate::util::failed;

const QUOTE: &[u8] = include_bytes!("data/tdx/tdx_quote");
const COLLATERAL: &[u8] = include_bytes!("data/tdx/tdx_quote_collateral.json");
/// 2025-07-01T00:00:00Z: inside the collateral's validity (TCB info and QE identity issued
/// 2025-06-19, next update 2025-07-19).
const NOW: u64 = 1_751_328_000;
/// The sample quote's MRTD (from its bytes, checked by `the_parser_reads_the_sample`).
const SAMPLE_MRTD: &str = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";

fn h48(s: &str) -> [u8; 48] {
    let mut out = [0u8; 48];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

/// The release and binding the sample quote itself carries, so only what a test varies fails.
fn own(quote: &[u8]) -> (TdxRelease, [u8; 64]) {
    let b = TdBody::from_quote(quote).unwrap();
    (
        TdxRelease {
            profile: "sample".into(),
            mrtd: b.mrtd,
            rtmr1: b.rtmr[1],
            rtmr2: b.rtmr[2],
        },
        b.report_data,
    )
}

fn policy() -> TdxPolicy {
    TdxPolicy {
        // The sample platform's status; a strict client would refuse it.
        accepted_tcb_status: vec!["UpToDate".into()],
        ..TdxPolicy::default()
    }
}

#[test]
fn the_parser_reads_the_sample() {
    let b = TdBody::from_quote(QUOTE).unwrap();
    // Independent offsets: header 48 bytes, MRTD at body +136, XFAM at +128 (Intel's layout).
    assert_eq!(b.mrtd, h48(SAMPLE_MRTD));
    assert_eq!(&b.mrtd[..], &QUOTE[48 + 136..48 + 184]);
    assert_eq!(&b.xfam[..], &QUOTE[48 + 128..48 + 136]);
    assert_eq!(b.rtmr[3], [0; 48]);
}

#[test]
fn real_quote_verifies_and_matches_itself() {
    let (release, rd) = own(QUOTE);
    let v = tdx::verify(QUOTE, COLLATERAL, NOW, &release, &policy(), &rd);
    assert!(v.passed(), "{v}");
    // Another image: only the measurement fails.
    let other = TdxRelease {
        mrtd: [7; 48],
        ..release.clone()
    };
    let v = tdx::verify(QUOTE, COLLATERAL, NOW, &other, &policy(), &rd);
    assert_eq!(failed(&v), ["tdx.mrtd"], "{v}");
    // Outside the collateral's validity, the signature path fails.
    let v = tdx::verify(
        QUOTE,
        COLLATERAL,
        NOW + 365 * 86_400,
        &release,
        &policy(),
        &rd,
    );
    assert!(failed(&v).contains(&"tdx.signature".to_string()), "{v}");
}

#[test]
fn flipped_bits_fail_the_signature() {
    let (release, rd) = own(QUOTE);
    // Header, TDATTRIBUTES, MRTD, RTMR1, REPORTDATA, the signature data.
    for pos in [8, 48 + 120, 48 + 140, 48 + 380, 48 + 530, 48 + 584 + 10] {
        let mut q = QUOTE.to_vec();
        q[pos] ^= 0x01;
        let v = tdx::verify(&q, COLLATERAL, NOW, &release, &policy(), &rd);
        assert!(
            failed(&v).contains(&"tdx.signature".to_string()),
            "{pos}: {v}"
        );
    }
}

/// Each modified body fails its own named check (body checks without the signature).
#[test]
fn each_body_failure_has_its_own_check() {
    let (release, rd) = own(QUOTE);
    let good = TdBody::from_quote(QUOTE).unwrap();
    let one = |f: &dyn Fn(&mut TdBody), pol: &TdxPolicy, rd: &[u8; 64]| {
        let mut b = good.clone();
        f(&mut b);
        let mut v = verifier::Verdict::default();
        tdx::check_body(&mut v, &b, &release, pol, rd);
        failed(&v)
    };
    let p = policy();
    assert!(one(&|_| {}, &p, &rd).is_empty());
    assert_eq!(one(&|b| b.rtmr[3][0] = 1, &p, &rd), ["tdx.rtmr3"]);
    assert_eq!(one(&|b| b.rtmr[1][47] ^= 1, &p, &rd), ["tdx.rtmr1"]);
    assert_eq!(one(&|b| b.rtmr[2][0] ^= 1, &p, &rd), ["tdx.rtmr2"]);
    assert_eq!(
        one(&|b| b.td_attributes[0] |= 1, &p, &rd),
        ["tdx.td_attributes.debug"]
    );
    assert_eq!(one(&|b| b.mrconfigid[0] = 1, &p, &rd), ["tdx.mrconfigid"]);
    assert_eq!(one(&|b| b.mrowner[5] = 1, &p, &rd), ["tdx.mrowner"]);
    assert_eq!(
        one(&|b| b.mrownerconfig[9] = 1, &p, &rd),
        ["tdx.mrownerconfig"]
    );
    let xfam = TdxPolicy {
        xfam: Some([0xe7, 0x02, 0x06, 0, 0, 0, 0, 0]),
        ..policy()
    };
    assert!(one(&|_| {}, &xfam, &rd).is_empty());
    assert_eq!(one(&|b| b.xfam[1] = 0x1a, &xfam, &rd), ["tdx.xfam"]);
    // A declared platform profile: RTMR0 as the public quote holds it (body +328).
    let mut rtmr0 = [0u8; 48];
    rtmr0.copy_from_slice(&QUOTE[48 + 328..48 + 376]);
    let platform = TdxPolicy {
        rtmr0: Some(rtmr0),
        ..policy()
    };
    assert!(one(&|_| {}, &platform, &rd).is_empty());
    assert_eq!(one(&|b| b.rtmr[0][20] ^= 4, &platform, &rd), ["tdx.rtmr0"]);
    // Undeclared, RTMR0 is not judged.
    assert!(one(&|b| b.rtmr[0][20] ^= 4, &p, &rd).is_empty());
    let other = verifier::binding::report_data(b"another key", b"nonce");
    assert_eq!(one(&|_| {}, &p, &other), ["tdx.report_data"]);
}

#[test]
fn unknown_versions_and_kinds_are_named() {
    let (release, rd) = own(QUOTE);
    let mut q = QUOTE.to_vec();
    q[0] = 3;
    let v = tdx::verify(&q, COLLATERAL, NOW, &release, &policy(), &rd);
    assert_eq!(failed(&v), ["tdx.quote"]);
    let v = tdx::verify(&QUOTE[..100], COLLATERAL, NOW, &release, &policy(), &rd);
    assert_eq!(failed(&v), ["tdx.quote"]);
    let v = tdx::verify(QUOTE, b"{}", NOW, &release, &policy(), &rd);
    assert_eq!(failed(&v), ["tdx.signature"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = TdBody::from_quote(&bytes);
        let (release, rd) = own(QUOTE);
        let v = tdx::verify(&bytes, COLLATERAL, NOW, &release, &policy(), &rd);
        prop_assert!(!v.passed());
    }

    #[test]
    // The signed part (header and body, 632 bytes) and the quote signature (64 bytes after
    // the 4-byte signature-data length at 632). The length itself is not signed: dcap-qvl
    // accepts some changed values of it (bit 4 of byte 632), which changes nothing attested.
    fn flipped_signed_bytes_never_pass(pos in prop_oneof![0usize..632, 636usize..700], bit in 0u8..8) {
        let mut q = QUOTE.to_vec();
        q[pos] ^= 1 << bit;
        let (release, rd) = own(QUOTE);
        let v = tdx::verify(&q, COLLATERAL, NOW, &release, &policy(), &rd);
        prop_assert!(!v.passed(), "flip at {} passed", pos);
    }
}

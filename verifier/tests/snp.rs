//! SEV-SNP: real evidence for the signature and chain path, built reports for every verdict.

use proptest::prelude::*;
use verifier::snp::{self, SnpEvidence, SnpPolicy, SnpRelease, Tcb, TrustAnchors};

use crate::util::{self, build_report, failed, Fields};

fn release(digest: [u8; 48]) -> SnpRelease {
    SnpRelease {
        profile: "test".into(),
        launch_digest: digest,
    }
}

/// The Milan report's own measurement (virtee/sev data; not an image of ours).
const MILAN_MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";

fn milan_verdict(report: &[u8], digest: [u8; 48]) -> verifier::Verdict {
    let ev = SnpEvidence {
        report,
        vcek: util::MILAN_VCEK,
        ark: None,
        ask: None,
    };
    // The report's own REPORT_DATA, so only what the test varies can fail.
    let mut rd = [0u8; 64];
    rd.copy_from_slice(&util::milan_report()[0x50..0x90]);
    snp::verify(
        &ev,
        &TrustAnchors::amd(),
        &release(digest),
        &SnpPolicy::default(),
        &rd,
    )
}

const GENUINE: [&str; 9] = [
    "snp.version",
    "snp.signature_algo",
    "snp.signing_key",
    "snp.chain.ark",
    "snp.chain.ask",
    "snp.chain.vcek",
    "snp.signature",
    "snp.vcek.tcb",
    "snp.vcek.chip_id",
];

fn passed(v: &verifier::Verdict, name: &str) -> bool {
    v.checks().iter().any(|c| c.name == name && c.passed)
}

#[test]
fn real_milan_report_is_genuine_and_its_measurement_is_not_ours() {
    let report = util::milan_report();
    let mut theirs = [0u8; 48];
    hex::decode_to_slice(MILAN_MEASUREMENT, &mut theirs).unwrap();
    let v = milan_verdict(&report, theirs);
    for name in GENUINE {
        assert!(passed(&v, name), "{name} should pass:\n{v}");
    }
    assert!(v.passed(), "{v}");

    // Against a release with another launch digest: only the measurement fails.
    let v = milan_verdict(&report, [0x42; 48]);
    assert_eq!(failed(&v), ["snp.measurement"], "{v}");
}

#[test]
fn real_milan_report_with_the_host_served_chain() {
    let report = util::milan_report();
    let (ask, ark) = util::MILAN_CHAIN
        .split_at(util::MILAN_CHAIN.find("-----END CERTIFICATE-----").unwrap() + 25);
    let mut rd = [0u8; 64];
    rd.copy_from_slice(&report[0x50..0x90]);
    let mut digest = [0u8; 48];
    hex::decode_to_slice(MILAN_MEASUREMENT, &mut digest).unwrap();
    let ev = SnpEvidence {
        report: &report,
        vcek: util::MILAN_VCEK,
        ark: Some(ark.as_bytes()),
        ask: Some(ask.as_bytes()),
    };
    let anchors = TrustAnchors::amd();
    let v = snp::verify(&ev, &anchors, &release(digest), &SnpPolicy::default(), &rd);
    assert!(v.passed(), "{v}");
    // The Genoa ARK is AMD's too, but not this chain's root.
    let genoa = anchors
        .anchors()
        .iter()
        .find(|a| a.product == snp::Product::Genoa)
        .unwrap();
    let ev = SnpEvidence {
        ark: Some(&genoa.ark),
        ..ev
    };
    let v = snp::verify(&ev, &anchors, &release(digest), &SnpPolicy::default(), &rd);
    assert_eq!(failed(&v), ["snp.chain.ark"], "{v}");
}

#[test]
fn real_milan_report_fails_after_flipped_bits() {
    // Header, policy, REPORT_DATA, MEASUREMENT, CHIP_ID, the last signed byte, r and s.
    for (pos, bit) in [
        (0x04, 0),
        (0x08, 3),
        (0x50, 7),
        (0x90, 0),
        (0x1A0, 5),
        (0x29F, 1),
        (0x2A0, 0),
        (0x2E8, 4),
    ] {
        let v = milan_flipped(pos, bit);
        assert!(!v.passed(), "flip at {pos:#x} passed");
        assert!(
            failed(&v).contains(&"snp.signature".to_string()),
            "{pos:#x}: {v}"
        );
    }
}

/// The verdict on the real Milan report with bit `bit` of byte `pos` flipped, against its
/// own measurement.
fn milan_flipped(pos: usize, bit: u8) -> verifier::Verdict {
    let mut r = util::milan_report();
    let mut digest = [0u8; 48];
    hex::decode_to_slice(MILAN_MEASUREMENT, &mut digest).unwrap();
    r[pos] ^= 1 << bit;
    milan_verdict(&r, digest)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_flipped_bit_in_the_signed_part_or_signature_fails(pos in 0usize..0x2A0 + 144, bit in 0u8..8) {
        let v = milan_flipped(pos, bit);
        prop_assert!(!v.passed());
        // Flipping VERSION to an unknown value stops at `snp.version`; any other flip
        // must break the signature.
        let f = failed(&v);
        prop_assert!(f.contains(&"snp.signature".to_string()) || f == ["snp.version"], "{}", v);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
        let _ = snp::Report::parse(&bytes);
        let ev = SnpEvidence { report: &bytes, vcek: &bytes, ark: Some(&bytes), ask: None };
        let v = snp::verify(&ev, &util::test_anchors(), &release([0; 48]), &SnpPolicy::default(), &[0; 64]);
        prop_assert!(!v.passed());
    }

    #[test]
    fn random_reports_of_the_right_size_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0x4A0), version in prop::sample::select(vec![2u32, 3, 5])) {
        bytes[..4].copy_from_slice(&version.to_le_bytes());
        prop_assert!(snp::Report::parse(&bytes).is_ok());
        let ev = SnpEvidence { report: &bytes, vcek: util::TEST_VCEK, ark: None, ask: None };
        let v = snp::verify(&ev, &util::test_anchors(), &release([0; 48]), &SnpPolicy::default(), &[0; 64]);
        prop_assert!(failed(&v).contains(&"snp.signature".to_string()));
    }
}

// Built reports, signed by the test VCEK key.

const DIGEST: [u8; 48] = [0xD1; 48];

fn bound() -> [u8; 64] {
    verifier::binding::report_data(b"server spki", b"client nonce 0001")
}

fn good() -> Fields {
    Fields {
        measurement: DIGEST,
        report_data: bound(),
        ..Fields::default()
    }
}

fn policy() -> SnpPolicy {
    SnpPolicy {
        min_tcb: Tcb {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: 0,
        },
        vmpl: 0,
        smt: Some(true),
    }
}

fn verdict_for(report: &[u8], ark: Option<&[u8]>) -> verifier::Verdict {
    let ev = SnpEvidence {
        report,
        vcek: util::TEST_VCEK,
        ark,
        ask: Some(util::TEST_ASK),
    };
    snp::verify(
        &ev,
        &util::test_anchors(),
        &release(DIGEST),
        &policy(),
        &bound(),
    )
}

#[test]
fn built_report_matching_the_release_passes_every_check_in_each_version() {
    for version in snp::KNOWN_VERSIONS {
        let v = verdict_for(
            &build_report(&Fields { version, ..good() }),
            Some(util::TEST_ARK),
        );
        assert!(v.passed(), "version {version}:\n{v}");
        let names: Vec<_> = v.checks().iter().map(|c| c.name.as_str()).collect();
        for name in GENUINE.iter().chain(&[
            "snp.measurement",
            "snp.policy.debug",
            "snp.policy.migrate_ma",
            "snp.policy.smt",
            "snp.policy.reserved",
            "snp.tcb",
            "snp.vmpl",
            "snp.report_data",
        ]) {
            assert!(names.contains(name), "{name} missing:\n{v}");
        }
    }
}

/// Each mutation of a good report fails exactly the named checks.
#[test]
fn each_failure_has_its_own_check() {
    let one = |f: Fields| failed(&verdict_for(&build_report(&f), None));
    assert_eq!(
        one(Fields {
            measurement: [0xD2; 48],
            ..good()
        }),
        ["snp.measurement"],
        "another profile's measurement"
    );
    assert_eq!(
        one(Fields {
            policy: 0x30000 | 1 << 19,
            ..good()
        }),
        ["snp.policy.debug"]
    );
    assert_eq!(
        one(Fields {
            policy: 0x30000 | 1 << 18,
            ..good()
        }),
        ["snp.policy.migrate_ma"]
    );
    assert_eq!(
        one(Fields {
            policy: 0x20000,
            ..good()
        }),
        ["snp.policy.smt"]
    );
    assert_eq!(
        one(Fields {
            policy: 0x10000,
            ..good()
        }),
        ["snp.policy.reserved"]
    );
    assert_eq!(
        one(Fields {
            policy: 0x30000 | 1 << 40,
            ..good()
        }),
        ["snp.policy.reserved"]
    );
    assert_eq!(one(Fields { vmpl: 1, ..good() }), ["snp.vmpl"]);
    let other_key = verifier::binding::report_data(b"another spki", b"client nonce 0001");
    assert_eq!(
        one(Fields {
            report_data: other_key,
            ..good()
        }),
        ["snp.report_data"]
    );
    let other_nonce = verifier::binding::report_data(b"server spki", b"client nonce 0002");
    assert_eq!(
        one(Fields {
            report_data: other_nonce,
            ..good()
        }),
        ["snp.report_data"]
    );
    // A chip whose VCEK says TCB 3/0/8/115 cannot claim another REPORTED_TCB.
    assert_eq!(
        one(Fields {
            reported_tcb: [3, 0, 0, 0, 0, 0, 9, 115],
            ..good()
        }),
        ["snp.vcek.tcb"]
    );
    assert_eq!(
        one(Fields {
            chip_id: [0x12; 64],
            ..good()
        }),
        ["snp.vcek.chip_id"]
    );
    assert_eq!(
        one(Fields {
            version: 4,
            ..good()
        }),
        ["snp.version"]
    );
    assert_eq!(
        one(Fields {
            version: 1,
            ..good()
        }),
        ["snp.version"]
    );
}

#[test]
fn tcb_below_the_minimum_fails() {
    let report = build_report(&good());
    let ev = SnpEvidence {
        report: &report,
        vcek: util::TEST_VCEK,
        ark: None,
        ask: None,
    };
    let strict = SnpPolicy {
        min_tcb: Tcb {
            snp: 9,
            ..policy().min_tcb
        },
        ..policy()
    };
    let v = snp::verify(
        &ev,
        &util::test_anchors(),
        &release(DIGEST),
        &strict,
        &bound(),
    );
    assert_eq!(failed(&v), ["snp.tcb"], "{v}");
}

#[test]
fn one_flipped_bit_fails_the_signature() {
    let mut report = build_report(&good());
    report[0x100] ^= 0x01; // inside ID_KEY_DIGEST: no other check looks at it
    assert_eq!(failed(&verdict_for(&report, None)), ["snp.signature"]);
}

#[test]
fn a_chain_under_another_ark_fails() {
    let v = verdict_for(&build_report(&good()), Some(util::OTHER_ARK));
    assert_eq!(failed(&v), ["snp.chain.ark"], "{v}");
    // The test VCEK under AMD's real roots: no pinned ASK issued it.
    let v = under_amd_roots(&build_report(&good()), util::TEST_VCEK);
    assert_eq!(failed(&v), ["snp.chain.ark", "snp.chain.vcek"], "{v}");
}

/// The verdict on `report` with `vcek` under AMD's real roots (pinned in the verifier).
fn under_amd_roots(report: &[u8], vcek: &[u8]) -> verifier::Verdict {
    let ev = SnpEvidence {
        report,
        vcek,
        ark: None,
        ask: None,
    };
    snp::verify(
        &ev,
        &TrustAnchors::amd(),
        &release(DIGEST),
        &policy(),
        &bound(),
    )
}

#[test]
fn a_signature_by_another_key_fails() {
    // The real Milan VCEK did not sign the built report.
    let v = under_amd_roots(&build_report(&good()), util::MILAN_VCEK);
    let f = failed(&v);
    assert!(f.contains(&"snp.signature".to_string()), "{v}");
    assert!(!f.contains(&"snp.chain.vcek".to_string()), "{v}");
}

#[test]
fn wrong_length_is_named() {
    let report = build_report(&good());
    let v = verdict_for(&report[..0x4A0 - 1], None);
    assert_eq!(failed(&v), ["snp.report"]);
    assert!(!v.passed());
}

#[test]
fn real_go_sev_guest_report_is_genuine_with_debug_on() {
    let report = include_bytes!("data/snp/go-sev-guest-attestation.bin");
    let ev = SnpEvidence {
        report,
        vcek: include_bytes!("data/snp/go-sev-guest-vcek.der"),
        ark: None,
        ask: None,
    };
    let mut rd = [0u8; 64];
    rd.copy_from_slice(&report[0x50..0x90]);
    let mut theirs = [0u8; 48];
    theirs.copy_from_slice(&report[0x90..0xC0]);
    // Verified against AMD's roots, expecting the launch digest `expected`.
    let amd = |ev: &SnpEvidence, expected| {
        snp::verify(
            ev,
            &TrustAnchors::amd(),
            &release(expected),
            &SnpPolicy::default(),
            &rd,
        )
    };
    let v = amd(&ev, theirs);
    for name in GENUINE {
        assert!(passed(&v, name), "{name} should pass:\n{v}");
    }
    // Its guest policy is 0xb0000: DEBUG (bit 19) on, so the genuine report is refused.
    assert_eq!(failed(&v), ["snp.policy.debug"], "{v}");
    let v = amd(&ev, [0; 48]);
    assert_eq!(failed(&v), ["snp.measurement", "snp.policy.debug"], "{v}");
    let mut flipped = report.to_vec();
    flipped[0x1B0] ^= 0x40;
    let ev = SnpEvidence {
        report: &flipped,
        ..ev
    };
    let v = amd(&ev, theirs);
    assert!(failed(&v).contains(&"snp.signature".to_string()), "{v}");
}

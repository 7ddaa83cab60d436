//! The SEV-SNP report parser and the whole verdict over hostile report bytes (with a real
//! VCEK, so the signature path runs): errors and failed checks are fine; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::snp::{self, SnpEvidence, SnpPolicy, SnpRelease, TrustAnchors};

const VCEK: &[u8] = include_bytes!("../../tests/data/snp/vcek_milan.der");

fuzz_target!(|data: &[u8]| {
    let _ = snp::Report::parse(data);
    let ev = SnpEvidence { report: data, vcek: VCEK, ark: None, ask: None };
    let release = SnpRelease { profile: "fuzz".into(), launch_digest: [0; 48] };
    let v = snp::verify(&ev, &TrustAnchors::amd(), &release, &SnpPolicy::default(), &[0; 64]);
    assert!(!v.passed(), "a report nobody signed passed");
});

//! The certificate path over hostile bytes: the VCEK, ARK and ASK the caller passes, and the
//! server key of the binding. Errors and failed checks are fine; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::snp::{self, SnpEvidence, SnpPolicy, SnpRelease, TrustAnchors};

const REPORT: &str = include_str!("../../tests/data/snp/report_milan.hex");

fuzz_target!(|data: &[u8]| {
    let _ = verifier::binding::server_key_der(data);
    let mut report = [0u8; 0x4A0];
    for (i, b) in report.iter_mut().enumerate() {
        *b = REPORT
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    let (a, b) = data.split_at(data.len() / 2);
    let release = SnpRelease { profile: "fuzz".into(), launch_digest: [0; 48] };
    for ev in [
        SnpEvidence { report: &report, vcek: data, ark: None, ask: None },
        SnpEvidence { report: &report, vcek: a, ark: Some(b), ask: Some(a) },
    ] {
        let v = snp::verify(&ev, &TrustAnchors::amd(), &release, &SnpPolicy::default(), &[0; 64]);
        assert!(!v.passed());
    }
});

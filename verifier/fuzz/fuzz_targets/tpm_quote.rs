//! The vTPM quote parsers (`TPMS_ATTEST`, `TPMT_SIGNATURE`, the AK key) and the whole verdict
//! over hostile bytes, split into attestation data, signature and key. Errors and failed
//! checks are fine; panics are bugs, and so is a pass (the expected PCR digest is SHA-256
//! of two zero PCRs, which no input signed by a key it also supplies should reach by chance).
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::tpm::{self, Attest, Signature, TpmEvidence, TpmRelease};

fuzz_target!(|data: &[u8]| {
    let _ = Attest::parse(data);
    let _ = Signature::parse(data);
    let (a, rest) = data.split_at(data.len().min(usize::from(data.first().copied().unwrap_or(0)) * 2));
    let (s, k) = rest.split_at(rest.len() / 2);
    let ev = TpmEvidence { attest: a, signature: s, ak: k };
    let release = TpmRelease {
        profile: "fuzz".into(),
        pcr4: [0; 32],
        pcr11: [0; 32],
        other: Default::default(),
    };
    let v = tpm::verify(&ev, &release, &[0; 32]);
    assert!(!v.passed(), "a quote nobody signed passed");
});

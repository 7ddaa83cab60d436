//! Hostile release material: the bytes as a DSSE envelope, an in-toto statement, an SPKI
//! key (DER and PEM), and a whole release judged by `check_release`. Errors and failed
//! verdicts are fine; panics are bugs, and a verdict with no trusted key must never pass.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::release::{check_release, Envelope, Policy, PublicKey, Release, Sha256, Statement};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::parse(data) {
        let _ = env.payload();
        let _ = env.verify(&[]);
    }
    if let Ok(st) = Statement::parse(data) {
        let _ = st.subjects();
    }
    let _ = PublicKey::from_spki_der(data);
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = PublicKey::from_pem(text);
    }
    let files = [(String::from("record.json"), Sha256::of(data))];
    let envelopes = [(String::from("release.intoto.json"), data.to_vec())];
    let v = check_release(
        &Release {
            files: &files,
            record: data,
            envelopes: &envelopes,
            keys: &[],
        },
        &Policy::default(),
    );
    assert!(!v.passed, "a release passed a policy that trusts no key");
});

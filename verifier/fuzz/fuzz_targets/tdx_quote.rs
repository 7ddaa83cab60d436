//! The TDX quote header/body parser and the whole verdict (dcap-qvl's quote and collateral
//! parsers included) over hostile quote bytes: errors and failed checks are fine; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::tdx::{self, TdBody, TdxPolicy, TdxRelease};

const COLLATERAL: &[u8] = include_bytes!("../../tests/data/tdx/tdx_quote_collateral.json");

fuzz_target!(|data: &[u8]| {
    let _ = TdBody::from_quote(data);
    let release = TdxRelease { profile: "fuzz".into(), mrtd: [0; 48], rtmr1: [0; 48], rtmr2: [0; 48] };
    let v = tdx::verify(data, COLLATERAL, 1_751_328_000, &release, &TdxPolicy::default(), &[0; 64]);
    assert!(!v.passed(), "a quote with zero measurements passed");
});

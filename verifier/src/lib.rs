//! The client's side: bytes in, a [`Verdict`] of named checks out, failing closed.
//!
//! A client pins a release and refuses any VM whose evidence does not match it. This crate
//! holds everything that decision needs and nothing else: no build machinery, no network, no
//! file system, no clock. Certificates, collateral, keys and policies are passed in as bytes or
//! values. It is `#![no_std]` with `alloc`, so it can be embedded in a browser or a phone.
//!
//! Evidence: [`snp::verify`] (an SEV-SNP report and its AMD chain vs a release's launch
//! digest); `tdx::verify` (feature `std`: a TDX quote with its DCAP collateral vs MRTD, RTMR1, RTMR2);
//! [`tpm::verify`] (a vTPM `TPM2_Quote` and its AK vs a release's PCR 4 and PCR 11);
//! [`binding`] is the one convention tying evidence to a session.
//!
//! Every check is reported by name with the expected and the actual value; a verdict passes
//! only when it holds at least one check and every check passed.
//!
//! ```
//! use verifier::Verdict;
//! let mut v = Verdict::default();
//! v.check("measurement", "abc", "abc");
//! assert!(v.passed());
//! v.check("policy.debug", "off", "on");
//! assert!(!v.passed());
//! assert_eq!(v.failures().next().unwrap().name, "policy.debug");
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod binding;
pub mod release;
pub mod snp;
#[cfg(feature = "std")]
pub mod tdx;
pub mod tpm;
mod verdict;

pub use verdict::{Check, Verdict};

//! Launch measurements for confidential VMs, as pure functions of bytes.
//!
//! A client pins a launch measurement, not an image. This crate computes, from the exact bytes
//! a VMM loads (firmware, kernel, initrd, command line) and the declared platform shape, the
//! digest the hardware will report:
//!
//! - [`snp`]: the AMD SEV-SNP launch digest (`MEASUREMENT` in the attestation report);
//! - [`tdx`]: Intel TDX `MRTD` and the RTMRs;
//! - [`tpm`]: vTPM PCRs as systemd-stub and the firmware extend them;
//! - [`reader`]: the bounds-checked reads every binary parser in the workspace uses;
//! - [`record`]: the record format that carries these values.
//!
//! It has no file system, network, clock or feature flags: verifiers embed it as it is.
//!
//! ```
//! use measurements::Sha256Digest;
//! let d: Sha256Digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().unwrap();
//! assert_eq!(d, Sha256Digest::of(b""));
//! ```
#![forbid(unsafe_code)]

mod digest;
mod ovmf_table;
pub mod reader;
pub mod snp;
pub mod tdx;
pub mod tpm;

pub use digest::{DigestParseError, Sha256Digest, Sha384Digest};
pub mod record;

//! The process exit codes (README "Exit codes"). Changing a value breaks scripts that test it.

/// Exit code: the build or command failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: an input was refused.
pub const EXIT_INPUT_REFUSED: u8 = 3;
/// Exit code: not reproducible (`check`: the builds differ; `verify`: other artifacts).
pub const EXIT_NOT_REPRODUCIBLE: u8 = 4;
/// Exit code: `verify` rebuilt from other inputs than the published record lists.
pub const EXIT_INPUTS_DIFFER: u8 = 5;
/// Exit code: `verify` found only launch measurements differing.
pub const EXIT_MEASUREMENTS_DIFFER: u8 = 6;
/// Exit code: `lint` found at least one error.
pub const EXIT_LINT_ERRORS: u8 = 7;
/// Exit code: `attest check`: at least one check of the evidence failed.
pub const EXIT_ATTESTATION_FAILED: u8 = 8;
/// Exit code: `release check`: the release does not satisfy the policy.
pub const EXIT_RELEASE_REJECTED: u8 = 9;
/// Exit code: `push`/`pull`: the registry or the transfer failed.
pub const EXIT_TRANSFER_FAILED: u8 = 10;

//! The `enclave-builder` binary: parse arguments, run, map the error to an exit code.
fn main() {}

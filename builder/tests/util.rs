//! Test support for the builder's suite, in one place: the fixtures, running a tool or the
//! binary, scratch directories, and Debian's signed kernel (the part shared with the
//! `measurements` suite is one file, `measurements/tests/support.rs`, included here).

use std::process::{Command, Stdio};

#[path = "../../measurements/tests/support.rs"]
mod support;
pub(crate) use support::{debian_kernel, fixture, run, scratch, systemd_measure};

/// The `enclave-builder` binary cargo built for this suite.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_enclave-builder"))
}

/// Runs `cmd` with `stdin` as its standard input, asserts success, returns stdout.
pub(crate) fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

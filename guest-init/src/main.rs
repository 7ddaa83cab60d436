//! `enclave-init`: runs the workload, then powers the VM off whatever happened.

use std::io::Write;

fn main() {
    let mut console = std::io::stderr();
    let result = enclave_init::run(&mut console);
    let _ = match &result {
        Ok(status) => writeln!(
            console,
            "enclave-init: workload ended ({status:?}); powering off"
        ),
        Err(e) => {
            let mut msg = format!("enclave-init: error: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            writeln!(console, "{msg}; powering off")
        }
    };
    if matches!(
        result,
        Err(enclave_init::Error::Sys(
            enclave_init::sys::Error::NotPid1 { .. }
        ))
    ) {
        // Not an init: never power off the machine we happen to run on.
        std::process::exit(2);
    }
    let err = enclave_init::sys::power_off(&mut console);
    let _ = writeln!(console, "enclave-init: {err}");
    // Returning from PID 1 makes the kernel panic, which also stops the VM.
}

//! `enclave-init`: runs the workload, then powers the VM off whatever happened.

use std::io::Write;

fn main() {
    let mut console = std::io::stderr();
    let result = enclave_init::run(&mut console);
    if let Err(e @ enclave_init::Error::Sys(enclave_init::sys::Error::NotPid1 { .. })) = &result {
        // Not an init: never power off the machine we happen to run on.
        let _ = writeln!(console, "enclave-init: {e}");
        std::process::exit(2);
    }
    let _ = match &result {
        Ok(status) => match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => writeln!(
                console,
                "enclave-init: workload exited with status {code}; powering off"
            ),
            (_, Some(sig)) => writeln!(
                console,
                "enclave-init: workload killed by signal {sig}; powering off"
            ),
            _ => writeln!(console, "enclave-init: workload ended; powering off"),
        },
        // Every error's message already includes its cause.
        Err(e) => writeln!(console, "enclave-init: error: {e}; powering off"),
    };
    let err = enclave_init::sys::power_off(&mut console);
    let _ = writeln!(console, "enclave-init: {err}");
    // Returning from PID 1 makes the kernel panic, which also stops the VM.
}

//! `enclave-init`: PID 1 of the confidential VM.
//!
//! The init does one thing: start the image's workload in a minimal, fixed environment, and
//! power the VM off when the workload ends or anything goes wrong. It never offers a shell.
//!
//! ```text
//! mount /proc ─▶ read /proc/cmdline ─▶ cmdline::parse ─▶ mount /sys /dev /run /tmp ...
//!   ─▶ network (lo, optional static IPv4) ─▶ wait for required devices ─▶ data mounts
//!   ─▶ workload::parse + compose (user resolved from /etc/passwd)
//!   ─▶ hand the attestation interfaces (/dev/tpmrm0, a TSM report entry) to its user ─▶ spawn
//!   ─▶ reap every child until the workload exits ─▶ sync, power off
//! ```
//!
//! The pure modules ([`cmdline`], [`workload`], [`user`], [`mounts`], [`net`]) decide
//! everything and are unit-tested; [`sys`] only makes the system calls.
#![forbid(unsafe_code)]

pub mod cmdline;
pub mod mounts;
pub mod net;
pub mod sys;
pub mod user;
pub mod workload;

use std::io::Write;

pub use rustix::process::WaitStatus;

/// Any failure of the init; the caller reports it and powers off.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system operation failed.
    #[error(transparent)]
    Sys(#[from] sys::Error),
    /// The kernel command line was refused.
    #[error("kernel command line: {0}")]
    Cmdline(#[from] cmdline::Error),
    /// The workload description was refused.
    #[error(transparent)]
    Workload(#[from] workload::Error),
}

/// Runs the init up to the workload's exit and returns its status. Progress lines go to
/// `console`. The caller powers off afterwards, whatever the result.
pub fn run(console: &mut dyn Write) -> Result<WaitStatus, Error> {
    sys::ensure_pid1()?;
    let (proc_mount, rest) = mounts::BASE_MOUNTS
        .split_first()
        .ok_or(sys::Error::NotPid1 { pid: 1 })?;
    sys::mount_base(proc_mount)?;
    let cmdline = sys::read("/proc/cmdline")?;
    let params = cmdline::parse(&String::from_utf8_lossy(&cmdline))?;
    for m in rest {
        sys::mount_base(m)?;
        if m.target == "/dev" {
            sys::reopen_console();
        }
    }
    sys::configure_network(&params)?;
    sys::wait_for_devices(&params.require, params.wait_secs)?;
    for m in &params.mounts {
        sys::mount_data(m)?;
    }
    let config = workload::parse(&sys::read(&params.workload)?, &params.workload)?;
    let passwd = sys::read_optional("/etc/passwd")?;
    let group = sys::read_optional("/etc/group")?;
    let launch = workload::compose(
        &config,
        passwd.as_deref(),
        group.as_deref(),
        &sys::is_executable,
    )?;
    for h in mounts::ATTESTATION {
        if sys::hand_over(h, launch.uid, launch.gid)? {
            let _ = writeln!(
                console,
                "enclave-init: {} handed to {}:{}",
                h.path, launch.uid, launch.gid
            );
        }
    }
    let _ = writeln!(
        console,
        "enclave-init: starting {} as {}:{} in {}",
        launch.program, launch.uid, launch.gid, launch.cwd
    );
    let pid = sys::spawn(&launch)?;
    Ok(sys::reap_until(pid)?)
}

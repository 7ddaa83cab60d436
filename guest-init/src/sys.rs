//! The thin layer that makes system calls (through `rustix`, no libc); everything it acts on
//! was decided by the pure modules. Nothing here is unit-tested: it needs to be PID 1.

use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::Mode;
use rustix::mount::MountFlags;
use rustix::net::{netlink, AddressFamily, SocketFlags, SocketType};
use rustix::process::{WaitOptions, WaitStatus};

use crate::cmdline::{DataMount, Params};
use crate::mounts::{Flags, Handover, MountSpec};
use crate::net;
use crate::workload::Launch;

/// A failed system operation, naming what it acted on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The process is not PID 1 (the init refuses to mount or power off a host).
    #[error("not running as PID 1 (pid {pid}); refusing to act as init")]
    NotPid1 {
        /// Our pid.
        pid: i32,
    },
    /// A mount failed.
    #[error("mount {fstype} on {target}: {source}")]
    Mount {
        /// The mount point.
        target: String,
        /// The file system type.
        fstype: String,
        /// The errno.
        source: io::Error,
    },
    /// A file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// An attestation interface could not be handed to the workload's user.
    #[error("hand {path} to the workload: {source}")]
    HandOver {
        /// The device or configfs entry.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// A network configuration step failed.
    #[error("network: {step}: {source}")]
    Net {
        /// What was being done (`bring up eth0`, ...).
        step: String,
        /// The error.
        source: io::Error,
    },
    /// A network request was refused by the kernel.
    #[error("network: {step}: {source}")]
    NetReply {
        /// What was being done.
        step: String,
        /// The reply.
        source: net::Error,
    },
    /// A required device did not appear in time.
    #[error("required device {path} did not appear within {secs} s")]
    DeviceMissing {
        /// The device node.
        path: String,
        /// The wait.
        secs: u32,
    },
    /// The workload could not be started.
    #[error("start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error.
        source: io::Error,
    },
    /// `waitpid` failed.
    #[error("wait for children: {source}")]
    Wait {
        /// The errno.
        source: io::Error,
    },
    /// `reboot(RB_POWER_OFF)` failed.
    #[error("power off: {source}")]
    PowerOff {
        /// The errno.
        source: io::Error,
    },
}

/// Fails unless this process is PID 1.
pub fn ensure_pid1() -> Result<(), Error> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    if pid == 1 {
        Ok(())
    } else {
        Err(Error::NotPid1 { pid })
    }
}

/// Mounts one base file system.
pub fn mount_base(m: &MountSpec) -> Result<(), Error> {
    let err = |source: io::Error| Error::Mount {
        target: m.target.to_owned(),
        fstype: m.fstype.to_owned(),
        source,
    };
    if m.optional && !Path::new(m.target).is_dir() {
        return Ok(());
    }
    if m.create_target {
        match rustix::fs::mkdir(m.target, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(err(e.into())),
        }
    }
    let data = std::ffi::CString::new(m.data).map_err(|e| err(io::Error::other(e)))?;
    match rustix::mount::mount(
        m.source,
        m.target,
        m.fstype,
        flags(m.flags),
        data.as_c_str(),
    ) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::BUSY) if m.may_exist => Ok(()),
        Err(e) => Err(err(e.into())),
    }
}

/// Hands `h` to `uid:gid` if it exists (making it first when [`Handover::create_in`] exists):
/// the path and, for a directory, its direct entries. Returns whether anything was handed.
pub fn hand_over(h: &Handover, uid: u32, gid: u32) -> Result<bool, Error> {
    let err = |path: &str, source: io::Error| Error::HandOver {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = h.create_in {
        if !Path::new(dir).is_dir() {
            return Ok(false);
        }
        match rustix::fs::mkdir(h.path, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            // The TSM report interface refuses new entries without a provider (no TEE).
            Err(rustix::io::Errno::NXIO) => return Ok(false),
            Err(e) => return Err(err(h.path, e.into())),
        }
    }
    let owner = |path: &Path| {
        rustix::fs::chown(
            path,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| err(&path.display().to_string(), e.into()))
    };
    if let Some(file) = h.readable {
        if fs_err::read(Path::new(h.path).join(file)).is_err() {
            if h.create_in.is_some() {
                let _ = rustix::fs::rmdir(h.path);
            }
            return Ok(false);
        }
    }
    match fs_err::metadata(h.path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(h.path, e)),
        Ok(m) if m.is_dir() => {
            let entries = fs_err::read_dir(h.path).map_err(|e| err(h.path, e))?;
            for entry in entries {
                owner(&entry.map_err(|e| err(h.path, e))?.path())?;
            }
        }
        Ok(_) => {}
    }
    owner(Path::new(h.path))?;
    Ok(true)
}

/// Mounts a data disk from `enclave.mount`.
pub fn mount_data(m: &DataMount) -> Result<(), Error> {
    let f = Flags {
        nosuid: true,
        nodev: true,
        noexec: false,
        read_only: m.read_only,
    };
    rustix::mount::mount(
        m.source.as_str(),
        m.target.as_str(),
        m.fstype.as_str(),
        flags(f),
        None,
    )
    .map_err(|e| Error::Mount {
        target: m.target.clone(),
        fstype: m.fstype.clone(),
        source: e.into(),
    })
}

fn flags(f: Flags) -> MountFlags {
    let mut out = MountFlags::empty();
    out.set(MountFlags::NOSUID, f.nosuid);
    out.set(MountFlags::NODEV, f.nodev);
    out.set(MountFlags::NOEXEC, f.noexec);
    out.set(MountFlags::RDONLY, f.read_only);
    out
}

/// Points stdin/stdout/stderr at `/dev/console` if stderr is not open (the kernel starts
/// init without them when the root has no `/dev/console` before devtmpfs is mounted).
/// Best effort.
pub fn reopen_console() {
    use rustix::fs::OFlags;
    if rustix::io::fcntl_getfd(io::stderr()).is_ok() {
        return;
    }
    if let Ok(fd) = rustix::fs::open("/dev/console", OFlags::RDWR | OFlags::NOCTTY, Mode::empty()) {
        let _ = rustix::stdio::dup2_stdin(&fd);
        let _ = rustix::stdio::dup2_stdout(&fd);
        let _ = rustix::stdio::dup2_stderr(&fd);
    }
}

/// Reads a whole text file; `Ok(None)` if it does not exist.
pub fn read_optional(path: &str) -> Result<Option<String>, Error> {
    match fs_err::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads a whole file that must exist.
pub fn read(path: &str) -> Result<Vec<u8>, Error> {
    fs_err::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Whether `path` is a regular file with an execute bit.
pub fn is_executable(path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Brings up loopback, then applies `params.net` to `params.netif` if given.
pub fn configure_network(params: &Params) -> Result<(), Error> {
    let io_err = |step: &str| {
        let step = step.to_owned();
        move |e: rustix::io::Errno| Error::Net {
            step,
            source: e.into(),
        }
    };
    let nl = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None, // NETLINK_ROUTE is protocol 0
    )
    .map_err(io_err("open rtnetlink socket"))?;
    let ctl = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io_err("open control socket"))?;
    let mut seq = 0u32;
    let mut request = |step: String, msg: &dyn Fn(u32) -> Vec<u8>| -> Result<(), Error> {
        seq = seq.wrapping_add(1);
        let bytes = msg(seq);
        let kernel = netlink::SocketAddrNetlink::new(0, 0);
        rustix::net::sendto(&nl, &bytes, rustix::net::SendFlags::empty(), &kernel)
            .map_err(io_err(&step))?;
        let mut buf = [0u8; 4096];
        let (n, _) = rustix::net::recv(&nl, &mut buf, rustix::net::RecvFlags::empty())
            .map_err(io_err(&step))?;
        let reply = buf.get(..n).unwrap_or(&[]);
        net::parse_ack(reply, seq).map_err(|source| Error::NetReply { step, source })
    };

    let lo = rustix::net::netdevice::name_to_index(&ctl, "lo").map_err(io_err("find lo"))?;
    request("bring up lo".into(), &|s| net::link_up(lo, s))?;
    if let Some(cfg) = params.net {
        let ifname = &params.netif;
        let idx = rustix::net::netdevice::name_to_index(&ctl, ifname)
            .map_err(io_err(&format!("find {ifname}")))?;
        request(format!("bring up {ifname}"), &|s| net::link_up(idx, s))?;
        request(
            format!("add {}/{} to {ifname}", cfg.address, cfg.prefix),
            &|s| net::add_address(idx, cfg.address, cfg.prefix, s),
        )?;
        if let Some(gw) = cfg.gateway {
            request(format!("add default route via {gw}"), &|s| {
                net::add_default_route(idx, gw, s)
            })?;
        }
    }
    Ok(())
}

/// Waits until every path in `devices` exists, polling every 50 ms for up to `secs`.
pub fn wait_for_devices(devices: &[String], secs: u32) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(u64::from(secs));
    for dev in devices {
        while !Path::new(dev).exists() {
            if Instant::now() >= deadline {
                return Err(Error::DeviceMissing {
                    path: dev.clone(),
                    secs,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Starts the workload; returns its pid. The child gets a cleared environment plus
/// `launch.env`, the working directory, gid then uid (supplementary groups dropped by std).
pub fn spawn(launch: &Launch) -> Result<i32, Error> {
    let mut cmd = std::process::Command::new(&launch.program);
    if let Some((argv0, rest)) = launch.argv.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&launch.cwd)
        .gid(launch.gid)
        .uid(launch.uid);
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        program: launch.program.clone(),
        source,
    })?;
    // A pid always fits in i32 (the kernel's pid_max is at most 2^22).
    Ok(child.id() as i32)
}

/// Reaps every child (we are PID 1, orphans are ours) until `pid` exits; returns its status.
pub fn reap_until(pid: i32) -> Result<WaitStatus, Error> {
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((p, status))) if p.as_raw_nonzero().get() == pid => return Ok(status),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::Wait { source: e.into() }),
        }
    }
}

/// Flushes the file systems and powers the VM off. Returns only on failure.
pub fn power_off(console: &mut dyn Write) -> Error {
    let _ = console.flush();
    rustix::fs::sync();
    match rustix::system::reboot(rustix::system::RebootCommand::PowerOff) {
        Ok(()) => Error::PowerOff {
            source: io::Error::other("reboot returned"),
        },
        Err(e) => Error::PowerOff { source: e.into() },
    }
}

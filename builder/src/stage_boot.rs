//! Stage 5: the verity images + the pinned kernel and firmware → the boot artifacts
//! (`cmdline`, `vmlinuz`, `initrd.img`, `OVMF.fd`, `run-qemu.sh`, and `uki-PROFILE.efi` for
//! each vTPM profile) and each profile's launch measurement over exactly those bytes.

use std::path::Path;

use anyhow::Context as _;
use measurements::record;
use measurements::Sha256Digest;

use crate::manifest::Epoch;
use crate::pin::PinnedFile;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::stage_disks::BuiltDisk;
use crate::stage_inputs::VerifiedInputs;
use crate::verity;
use crate::verity_image::VerityImage;

/// Stage 5 output.
#[derive(Debug)]
pub struct Boot {
    /// The verity fragment of the command line.
    pub fragment: String,
    /// The whole command line.
    pub full: String,
    /// The artifacts written, with size and sha256, in writing order.
    pub outputs: Vec<record::Output>,
    /// Each profile's launch measurement, in profile order.
    pub measurements: Vec<record::ProfileMeasurement>,
}

/// Stage 5: writes the boot artifacts into `dir` and measures them for every profile.
pub fn write_boot(
    plan: &Plan,
    inputs: &VerifiedInputs,
    image: &VerityImage,
    disks: &[BuiltDisk],
    dir: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<Boot> {
    let m = &plan.manifest;
    let fragment = verity_cmdline(&m.boot.root_device, image, disks)?;
    let full = [
        m.boot.cmdline.trim().to_owned(),
        m.boot
            .init
            .as_ref()
            .map(|i| format!("init={i}"))
            .unwrap_or_default(),
        fragment.clone(),
    ]
    .into_iter()
    .filter(|p| !p.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    check_cmdline_length(&full, m.disks.len())?;
    // The kernel and firmware ship with the image so the VMM loads, and verifiers measure,
    // these exact bytes.
    let kernel = read_pinned(&inputs.kernel)?;
    let firmware = read_pinned(&inputs.firmware)?;
    let initrd = empty_initrd(m.image.source_date_epoch)?;
    let disk_files: Vec<&str> = disks.iter().map(|d| d.file_name.as_str()).collect();
    let run_qemu = run_qemu_script(&disk_files);
    let artifacts: [(&str, &[u8]); 5] = [
        ("cmdline", full.as_bytes()),
        ("vmlinuz", &kernel),
        ("initrd.img", &initrd),
        ("OVMF.fd", &firmware),
        ("run-qemu.sh", run_qemu.as_bytes()),
    ];
    let mut outputs = Vec::new();
    for (name, bytes) in artifacts {
        fs_err::write(dir.join(name), bytes)?;
        outputs.push(record::Output {
            name: name.to_owned(),
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(bytes),
        });
    }
    set_mode(&dir.join("run-qemu.sh"), 0o755)?;

    let boot = crate::measure::launch::BootImage {
        kernel: &kernel,
        initrd: Some(&initrd),
        cmdline: &full,
    };
    let mut measurements = Vec::new();
    for ((profile, fw), stub) in m
        .profiles
        .iter()
        .zip(&inputs.profile_firmware)
        .zip(&inputs.profile_stubs)
    {
        // A vTPM profile boots a UKI: the stub with this image's kernel, command line and
        // initrd as sections.
        let uki = match stub {
            Some(stub) => {
                let name = format!("uki-{}.efi", profile.name());
                progress.message(&format!("writing {name}"));
                let osrel = crate::uki::osrel(&m.image.name, &m.image.version);
                let bytes = crate::uki::build_uki(
                    &read_pinned(stub)?,
                    &crate::uki::UkiParts {
                        osrel: osrel.as_bytes(),
                        cmdline: full.as_bytes(),
                        initrd: Some(&initrd),
                        linux: &kernel,
                    },
                )
                .with_context(|| format!("building {name} from {}", stub.source))?;
                fs_err::write(dir.join(&name), &bytes)?;
                outputs.push(record::Output {
                    name: name.clone(),
                    size: bytes.len() as u64,
                    sha256: Sha256Digest::of(&bytes),
                });
                Some((name, bytes))
            }
            None => None,
        };
        progress.message(&format!("measuring profile {}", profile.name()));
        let uki = uki
            .as_ref()
            .map(|(name, bytes)| crate::measure::launch::Uki { name, bytes });
        measurements.extend(
            crate::measure::launch::measure(profile, fw, &boot, uki)
                .with_context(|| format!("measuring profile {}", profile.name()))?,
        );
    }
    Ok(Boot {
        fragment,
        full,
        outputs,
        measurements,
    })
}

/// The kernel command line fragment that opens the verity devices and mounts the root: the
/// root is the first device-mapper device (`/dev/dm-0`), each data disk follows with its own
/// minor number (`/dev/dm-1`, ...), required and mounted read-only by the guest init.
pub fn verity_cmdline(
    root_device: &str,
    image: &VerityImage,
    disks: &[BuiltDisk],
) -> Result<String, verity::Error> {
    let table = image.tree.dm_table(
        root_device,
        root_device,
        image.data_size,
        &["panic_on_corruption"],
    )?;
    let mut create = format!("root,,,ro,{table}");
    let mut init_params = String::new();
    for d in disks {
        let table = d.image.tree.dm_table(
            &d.device,
            &d.device,
            d.image.data_size,
            &["panic_on_corruption"],
        )?;
        create.push_str(&format!(";{},,{},ro,{table}", d.name, d.minor));
        init_params.push_str(&format!(
            " enclave.mount={},{},erofs,ro",
            d.dm_device, d.mount
        ));
    }
    let require = if disks.is_empty() {
        String::new()
    } else {
        let devs: Vec<&str> = disks.iter().map(|d| d.dm_device.as_str()).collect();
        format!(" enclave.require={}", devs.join(","))
    };
    Ok(format!(
        "root=/dev/dm-0 rootfstype=erofs ro dm-mod.create=\"{create}\"{require}{init_params}"
    ))
}

/// x86's `COMMAND_LINE_SIZE` (2048, NUL included): the kernel silently truncates a longer
/// line, which would cut a verity table. OVMF also appends ` initrd=initrd` (14 bytes).
pub const MAX_CMDLINE: usize = 2048 - 1 - 14;

/// Refuses a command line the kernel would truncate.
pub fn check_cmdline_length(full: &str, disks: usize) -> Result<(), crate::manifest::Error> {
    if full.len() <= MAX_CMDLINE {
        return Ok(());
    }
    Err(crate::manifest::Error::Field {
        origin: "the kernel command line".to_owned(),
        field: "boot.cmdline".to_owned(),
        problem: format!(
            "with the verity parameters of the root and {disks} data disk(s) it is {} bytes; \
             the kernel keeps {MAX_CMDLINE} (x86 COMMAND_LINE_SIZE minus what OVMF appends). \
             Shorten boot.cmdline or use fewer data disks (each adds about 250 bytes)",
            full.len()
        ),
    })
}

/// `run-qemu.sh` with one read-only virtio drive per data disk after the root, in order
/// (so they appear as /dev/vdb, /dev/vdc, ...). Its bytes depend only on the disk names.
pub fn run_qemu_script(disk_files: &[&str]) -> String {
    let drives: String = disk_files
        .iter()
        .map(|f| format!("  -drive \"file=$d/{f},format=raw,if=virtio,readonly=on\" \\\n"))
        .collect();
    RUN_QEMU.replace("@DISKS@", &drives)
}

/// The local-testing launcher written as `run-qemu.sh`: software emulation, direct kernel
/// boot of the output's own files, the root image (then each data disk, replacing `@DISKS@`)
/// read-only on virtio, guest port 8080 forwarded to 127.0.0.1:$PORT. Its bytes are fixed (no
/// paths), so it is reproducible.
const RUN_QEMU: &str = r#"#!/bin/sh
# Boots this image under QEMU for local testing, from the files beside this script.
# ACCEL (default tcg), CPU (default max), MEM (MiB, default 1024), PORT (host port for guest
# 8080, default 8080). The CPU model must offer RDRAND: on SEV-SNP and TDX the CPU's RDRAND
# seeds the guest's random number generator; without it (QEMU's default TCG model) the kernel
# RNG never initialises and the workload blocks in getrandom().
# The VM powers off when the workload exits; a dm-verity error panics the kernel, which stops
# QEMU (-no-reboot). Extra arguments are passed to QEMU.
d=$(dirname "$0")
exec qemu-system-x86_64 -machine q35 -accel "${ACCEL:-tcg}" -cpu "${CPU:-max}" \
  -m "${MEM:-1024}" -smp 1 \
  -nographic -no-reboot -bios "$d/OVMF.fd" \
  -kernel "$d/vmlinuz" -initrd "$d/initrd.img" -append "$(cat "$d/cmdline")" \
  -drive "file=$d/rootfs.img,format=raw,if=virtio,readonly=on" \
@DISKS@  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:${PORT:-8080}-:8080" \
  -device virtio-net-pci,netdev=n0 "$@"
"#;

/// The initramfs: empty (the kernel opens the verity root itself via `dm-mod.create=`), a
/// valid newc archive holding only the trailer. `epoch` fits newc's 32-bit mtime by type.
fn empty_initrd(epoch: Epoch) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    crate::initramfs::write_newc(
        &[],
        &crate::initramfs::Options {
            mtime: epoch.as_u32(),
            pad_to_block: true,
        },
        &mut out,
    )?;
    Ok(out)
}

fn read_pinned(f: &PinnedFile) -> anyhow::Result<Vec<u8>> {
    let bytes = fs_err::read(&f.path)?;
    anyhow::ensure!(
        Sha256Digest::of(&bytes) == f.sha256,
        "{} changed while the build was reading it; rebuild",
        f.source
    );
    Ok(bytes)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_command_line_the_kernel_would_truncate_is_refused() {
        // 2048 (x86 COMMAND_LINE_SIZE, NUL included) - 1 - len(" initrd=initrd").
        assert!(super::check_cmdline_length(&"x".repeat(2033), 0).is_ok());
        let e = super::check_cmdline_length(&"x".repeat(2034), 7)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2034 bytes") && e.contains("7 data disk(s)"),
            "{e}"
        );
    }
}

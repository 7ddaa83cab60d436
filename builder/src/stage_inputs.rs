//! Stage 1: the [`Plan`] → [`VerifiedInputs`]. Every local file is hashed and compared with
//! its pin, OCI image layouts are opened by manifest digest; all pin problems are collected
//! and reported together.

use anyhow::Context as _;
use measurements::record;
use measurements::Sha256Digest;

use crate::inputs::oci_layout;
use crate::manifest::LayerSource;
use crate::pin::{self, PinError, PinErrors, PinnedFile};
use crate::plan::Plan;
use crate::workload::workload_json;

/// Stage 1 output: every input verified against its pin.
#[derive(Debug)]
pub struct VerifiedInputs {
    /// Layers in application order, each with the record entry of its source.
    pub layers: Vec<VerifiedLayer>,
    /// Record entries, in manifest order.
    pub records: Vec<record::Input>,
    /// Extra files (manifest entry index, pinned source).
    pub files: Vec<(usize, PinnedFile)>,
    /// `rootfs.wheels`, in manifest order.
    pub rootfs_wheels: Vec<PinnedFile>,
    /// Each data disk's pinned inputs, in manifest order.
    pub disks: Vec<VerifiedDisk>,
    /// The kernel's configuration, when the manifest pins it.
    pub kernel_config: Option<PinnedFile>,
    /// The kernel.
    pub kernel: PinnedFile,
    /// The firmware.
    pub firmware: PinnedFile,
    /// Each profile's firmware, in profile order.
    pub profile_firmware: Vec<PinnedFile>,
    /// Each profile's UKI stub (vTPM profiles only), in profile order.
    pub profile_stubs: Vec<Option<PinnedFile>>,
    /// `workload.json` for the guest init, from the last OCI image's config.
    pub workload: Option<Vec<u8>>,
}

/// One layer to apply.
#[derive(Debug)]
pub struct VerifiedLayer {
    /// The blob, with the digest it must have.
    pub blob: oci_layout::LayerBlob,
    /// A plain tar layer's pin (its manifest field and path), checked as the layer is applied,
    /// so that a mismatch names them; `None` for an OCI image's layer (the image manifest pins it).
    pub tar: Option<PinnedFile>,
}

/// One data disk's pinned inputs.
#[derive(Debug)]
pub struct VerifiedDisk {
    /// `disks[i].wheels`, in manifest order.
    pub wheels: Vec<PinnedFile>,
    /// `disks[i].files`, in manifest order.
    pub files: Vec<PinnedFile>,
}

/// Stage 1: checks every pin. Problems with local files are collected and reported together.
pub fn verify_inputs(plan: &Plan) -> anyhow::Result<VerifiedInputs> {
    let m = &plan.manifest;
    let base = &plan.base_dir;
    let mut problems: Vec<PinError> = Vec::new();
    let mut records = Vec::new();
    let mut layers = Vec::new();
    let mut workload = None;
    for (i, source) in m.rootfs.layers.iter().enumerate() {
        match source {
            LayerSource::Oci { oci, manifest } => {
                let field = format!("rootfs.layers[{i}]");
                let Some(pin) = manifest else {
                    problems.push(PinError::MissingImage {
                        field,
                        source_path: oci.clone(),
                        available: oci_layout::list_manifests(&base.join(oci)),
                    });
                    continue;
                };
                let image = oci_layout::open_image(&base.join(oci), pin)
                    .with_context(|| format!("{field}: OCI image layout {oci}"))?;
                records.push(record::Input::OciImage {
                    source: oci.clone(),
                    manifest: image.manifest_digest,
                    config: image.config_digest,
                });
                workload = Some(workload_json(&image.config)?);
                for l in image.layers {
                    records.push(record::Input::Layer {
                        source: oci.clone(),
                        sha256: l.digest,
                        size: l.size,
                        media_type: l.media_type.clone(),
                    });
                    layers.push(VerifiedLayer { blob: l, tar: None });
                }
            }
            LayerSource::Tar { tar, sha256 } => {
                let field = format!("rootfs.layers[{i}]");
                // Read once: hashed for its pin while it is applied (`apply_checked`).
                match pin::check_deferred(base, tar, sha256.as_ref(), &field) {
                    Ok(p) => {
                        let l = oci_layout::tar_blob(&p.path, &p.sha256)
                            .with_context(|| format!("{field}: tar layer {tar}"))?;
                        records.push(record::Input::Layer {
                            source: tar.clone(),
                            sha256: p.sha256,
                            size: p.size,
                            media_type: l.media_type.clone(),
                        });
                        layers.push(VerifiedLayer {
                            blob: l,
                            tar: Some(p),
                        });
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    let mut files = Vec::new();
    for (i, f) in m.rootfs.files.iter().enumerate() {
        match pin::check(
            base,
            &f.source,
            f.sha256.as_ref(),
            &format!("rootfs.files[{i}]"),
        ) {
            Ok(p) => {
                records.push(record::Input::File {
                    disk: None,
                    path: f.path.to_string(),
                    source: f.source.clone(),
                    sha256: p.sha256,
                    size: p.size,
                });
                files.push((i, p));
            }
            Err(e) => problems.push(e),
        }
    }
    let mut pin_all = |field: String, path: &str, pin: Option<&Sha256Digest>, deferred: bool| {
        let checked = if deferred {
            pin::check_deferred(base, path, pin, &field)
        } else {
            pin::check(base, path, pin, &field)
        };
        match checked {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    };
    let rootfs_wheels: Vec<PinnedFile> = m
        .rootfs
        .wheels
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            pin_all(
                format!("rootfs.wheels[{i}]"),
                &w.wheel,
                w.sha256.as_ref(),
                false,
            )
        })
        .collect();
    let mut disks = Vec::new();
    for (d, disk) in m.disks.iter().enumerate() {
        let wheels = disk
            .wheels
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                pin_all(
                    format!("disks[{d}].wheels[{i}]"),
                    &w.wheel,
                    w.sha256.as_ref(),
                    false,
                )
            })
            .collect();
        let files = disk
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                // Weights: read once, in place, as the disk image is written (`adopt`).
                pin_all(
                    format!("disks[{d}].files[{i}]"),
                    &f.source,
                    f.sha256.as_ref(),
                    true,
                )
            })
            .collect();
        disks.push(VerifiedDisk { wheels, files });
    }
    let kernel_config = m.boot.kernel_config.as_ref().and_then(|c| {
        pin_all(
            "boot.kernel_config".to_owned(),
            &c.path,
            c.sha256.as_ref(),
            false,
        )
    });
    let mut profile_firmware = Vec::new();
    for (i, p) in m.profiles.iter().enumerate() {
        let fw = p.firmware();
        match pin::check(
            base,
            &fw.path,
            fw.sha256.as_ref(),
            &format!("profiles[{i}].firmware"),
        ) {
            Ok(f) => profile_firmware.push(f),
            Err(e) => problems.push(e),
        }
    }
    let mut profile_stubs = Vec::new();
    for (i, p) in m.profiles.iter().enumerate() {
        let crate::manifest::Profile::Vtpm(v) = p else {
            profile_stubs.push(None);
            continue;
        };
        match pin::check(
            base,
            &v.stub.path,
            v.stub.sha256.as_ref(),
            &format!("profiles[{i}].stub"),
        ) {
            Ok(f) => profile_stubs.push(Some(f)),
            Err(e) => problems.push(e),
        }
    }
    let kernel = pin::check(
        base,
        &m.boot.kernel.path,
        m.boot.kernel.sha256.as_ref(),
        "boot.kernel",
    );
    let firmware = pin::check(
        base,
        &m.boot.firmware.path,
        m.boot.firmware.sha256.as_ref(),
        "boot.firmware",
    );
    let (kernel, firmware) = match (kernel, firmware) {
        (Ok(k), Ok(f)) if problems.is_empty() => (k, f),
        (k, f) => {
            problems.extend(k.err());
            problems.extend(f.err());
            return Err(PinErrors(problems).into());
        }
    };
    records.push(record::Input::Kernel {
        source: kernel.source.clone(),
        sha256: kernel.sha256,
        size: kernel.size,
    });
    if let Some(c) = &kernel_config {
        records.push(record::Input::KernelConfig {
            source: c.source.clone(),
            sha256: c.sha256,
            size: c.size,
        });
    }
    records.push(record::Input::Firmware {
        source: firmware.source.clone(),
        sha256: firmware.sha256,
        size: firmware.size,
    });
    for f in &profile_firmware {
        let known = records
            .iter()
            .any(|r| matches!(r, record::Input::Firmware { sha256, .. } if *sha256 == f.sha256));
        if !known {
            records.push(record::Input::Firmware {
                source: f.source.clone(),
                sha256: f.sha256,
                size: f.size,
            });
        }
    }
    for f in profile_stubs.iter().flatten() {
        let known = records
            .iter()
            .any(|r| matches!(r, record::Input::UkiStub { sha256, .. } if *sha256 == f.sha256));
        if !known {
            records.push(record::Input::UkiStub {
                source: f.source.clone(),
                sha256: f.sha256,
                size: f.size,
            });
        }
    }
    Ok(VerifiedInputs {
        layers,
        records,
        files,
        rootfs_wheels,
        disks,
        kernel_config,
        kernel,
        firmware,
        profile_firmware,
        profile_stubs,
        workload: if m.boot.init.is_some() {
            workload
        } else {
            None
        },
    })
}

//! Stage 6: every stage's output → the [`Record`] (one place assembles it) and its canonical
//! bytes.

use measurements::record::{self, Record};
use measurements::Sha256Digest;

use crate::components::rust::Built;
use crate::plan::Plan;
use crate::seed;
use crate::stage_boot::Boot;
use crate::stage_disks::BuiltDisk;
use crate::stage_inputs::VerifiedInputs;
use crate::tree::wheel;
use crate::verity_image::VerityImage;

/// Stage 6: assembles the record from every stage's output.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    plan: &Plan,
    inputs: &VerifiedInputs,
    components: &[Built],
    rootfs_wheels: Vec<wheel::Unpacked>,
    image: &VerityImage,
    disks: Vec<BuiltDisk>,
    boot: Boot,
) -> Record {
    let m = &plan.manifest;
    let mut outputs = vec![record::Output {
        name: "rootfs.img".to_owned(),
        size: image.size,
        sha256: image.sha256,
    }];
    for d in &disks {
        outputs.push(record::Output {
            name: d.file_name.clone(),
            size: d.image.size,
            sha256: d.image.sha256,
        });
    }
    outputs.extend(boot.outputs);
    outputs.sort_by(|a, b| a.name.cmp(&b.name));

    // Inputs in manifest order: layers and files (stage 1), wheels, components, disks, then
    // the boot inputs (stage 1).
    let mut inputs_record = inputs.records.clone();
    let boot_at = inputs_record
        .iter()
        .position(|r| matches!(r, record::Input::Kernel { .. }))
        .unwrap_or(inputs_record.len());
    let mut middle = Vec::new();
    for ((w, pinned), u) in m
        .rootfs
        .wheels
        .iter()
        .zip(&inputs.rootfs_wheels)
        .zip(rootfs_wheels)
    {
        middle.push(u.into_record(None, &w.wheel, pinned.sha256, pinned.size));
    }
    for (r, b) in m.rootfs.rust.iter().zip(components) {
        middle.push(record::Input::RustComponent {
            package: r.package.clone(),
            bin: r.bin.clone(),
            path: r.path.to_string(),
            sha256: b.sha256,
            size: b.size,
            crates: b.crates.clone(),
        });
    }
    let mut disk_records = Vec::new();
    for d in disks {
        middle.extend(d.inputs);
        disk_records.push(record::Disk {
            name: d.name,
            mount: d.mount,
            image: d.file_name,
            device: d.device,
            dm_device: d.dm_device,
            filesystem: rootfs_record(&d.image),
        });
    }
    inputs_record.splice(boot_at..boot_at, middle);

    Record {
        schema: record::RECORD_SCHEMA.to_owned(),
        builder: record::BuilderInfo {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        image: record::ImageInfo {
            name: m.image.name.clone(),
            version: m.image.version.clone(),
        },
        manifest_sha256: plan.manifest_sha256,
        source_date_epoch: m.image.source_date_epoch.seconds(),
        inputs: inputs_record,
        outputs,
        rootfs: rootfs_record(image),
        disks: disk_records,
        kernel_cmdline: record::KernelCmdline {
            verity_fragment: boot.fragment,
            full: boot.full,
        },
        measurements: boot.measurements,
    }
}

/// The record's description of an EROFS + verity image.
pub fn rootfs_record(image: &VerityImage) -> record::Rootfs {
    record::Rootfs {
        filesystem: "erofs".to_owned(),
        uuid: seed::uuid_string(&image.fs_uuid),
        data_size: image.data_size,
        verity: record::Verity {
            hash_algorithm: "sha256".to_owned(),
            root_hash: Sha256Digest(image.tree.root_hash),
            salt: hex::encode(&image.params.salt),
            data_block_size: image.params.data_block_size,
            hash_block_size: image.params.hash_block_size,
            data_blocks: image.tree.data_blocks,
            hash_blocks: image.tree.hash_blocks,
            hash_offset: image.data_size,
            uuid: seed::uuid_string(&image.params.uuid),
        },
    }
}

/// The record's canonical bytes: pretty JSON in struct order, with a final newline.
pub fn record_json(record: &Record) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(record)?;
    bytes.push(b'\n');
    Ok(bytes)
}

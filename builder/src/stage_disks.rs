//! Stage 4b: data disks. Each disk's wheels and files → its own tree → EROFS → dm-verity →
//! `disk-NAME.img`, written beside `rootfs.img`.
//!
//! A disk's identifiers (file-system UUID, verity salt and UUID) derive from its name and
//! contents only, so changing a model changes its disk, its root hash and the command line,
//! and leaves the root image alone. The root image only carries the mount point.

use std::path::Path;

use anyhow::Context as _;
use measurements::record;

use crate::content::ContentStore;
use crate::placement::one_input_per_path;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::seed::{Part, Seed};
use crate::stage_inputs::VerifiedInputs;
use crate::tree::{self, wheel, Leaf, LeafKind, Metadata, Tree};
use crate::verity_image::{write_verity_image, VerityImage};

/// One data disk, written.
#[derive(Debug)]
pub struct BuiltDisk {
    /// The manifest's name for it (also its device-mapper name).
    pub name: String,
    /// Where the guest mounts it.
    pub mount: String,
    /// The output file name (`disk-NAME.img`).
    pub file_name: String,
    /// The virtio device it is attached as (`/dev/vdb`, ...).
    pub device: String,
    /// The device-mapper minor number the command line gives it (root is 0).
    pub minor: u32,
    /// `/dev/dm-MINOR`.
    pub dm_device: String,
    /// The image and its verity tree.
    pub image: VerityImage,
    /// Its record entries (wheels with their members, then files), in manifest order.
    pub inputs: Vec<record::Input>,
}

/// The virtio device of data disk `index`: the letters after the root's (`/dev/vda` → `/dev/vdb`).
pub fn disk_device(root_device: &str, index: usize) -> anyhow::Result<String> {
    let (prefix, last) = root_device
        .strip_prefix("/dev/vd")
        .filter(|l| l.len() == 1)
        .map(|l| ("/dev/vd", l.as_bytes()[0]))
        .with_context(|| {
            format!(
                "boot.root_device is {root_device:?}; data disks need a virtio root such as /dev/vda"
            )
        })?;
    let letter = usize::from(last) + 1 + index;
    anyhow::ensure!(
        letter <= usize::from(b'z'),
        "too many data disks after {root_device}: virtio names end at /dev/vdz"
    );
    Ok(format!("{prefix}{}", char::from(letter as u8)))
}

/// Builds every data disk of the manifest into `dir`.
pub fn build_disks(
    plan: &Plan,
    inputs: &VerifiedInputs,
    dir: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<BuiltDisk>> {
    let m = &plan.manifest;
    let mut out = Vec::new();
    for (d, (disk, pinned)) in m.disks.iter().zip(&inputs.disks).enumerate() {
        let field = format!("disks[{d}]");
        let store = ContentStore::new(dir.join(format!(".objects-disk-{d}")))?;
        let mut tree = Tree::new();
        let mut records = Vec::new();
        let mut unpacked = Vec::new();
        for (i, (w, p)) in disk.wheels.iter().zip(&pinned.wheels).enumerate() {
            progress.message(&format!(
                "disk {}: unpacking wheel {} ({} bytes)",
                disk.name, w.wheel, p.size
            ));
            let placement = wheel::Placement {
                take: w.take.as_deref(),
                into: &w.into,
            };
            let u = wheel::unpack(&p.path, &w.wheel, placement, &mut tree, &store)
                .with_context(|| format!("{field}.wheels[{i}]"))?;
            unpacked.push(u);
        }
        // A data disk has no layers underneath: every path comes from exactly one input, so
        // one input silently replacing another's file (and the record listing both) is refused.
        let field_ref = &field;
        let wheel_paths = unpacked.iter().enumerate().flat_map(|(i, u)| {
            u.files
                .iter()
                .map(move |f| (f.path.as_str(), format!("{field_ref}.wheels[{i}]")))
        });
        let file_paths = disk
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.as_str(), format!("{field}.files[{i}]")));
        one_input_per_path(
            wheel_paths.chain(file_paths),
            &format!("disk {}", disk.name),
        )?;
        for (i, (f, p)) in disk.files.iter().zip(&pinned.files).enumerate() {
            // Weights are large: the pinned file is read once, in place, when the image is
            // written, and its pin is checked then (`pin::check_deferred`), not copied into
            // the store first.
            let content = store.adopt(p)?;
            let leaf = Leaf {
                meta: Metadata {
                    mode: f.mode.bits(),
                    uid: f.uid,
                    gid: f.gid,
                    xattrs: Default::default(),
                },
                kind: LeafKind::Regular(content),
            };
            tree::apply::insert_file(&mut tree, f.path.as_bytes(), leaf)
                .with_context(|| format!("{field}.files[{i}]: {}: placing {}", f.source, f.path))?;
        }

        let mut parts = vec![Part::Disk(&disk.name)];
        for u in &unpacked {
            for (f, mode) in u.files.iter().zip(&u.modes) {
                parts.push(Part::File(&f.path, *mode, 0, 0, &f.sha256));
            }
        }
        for (f, p) in disk.files.iter().zip(&pinned.files) {
            parts.push(Part::File(&f.path, f.mode.bits(), f.uid, f.gid, &p.sha256));
        }
        let seed = Seed::new(m.image.source_date_epoch.seconds(), &parts);
        let file_name = format!("disk-{}.img", disk.name);
        let image = write_verity_image(
            m.image.source_date_epoch.seconds(),
            &seed,
            seed.verity_salt(),
            &tree,
            store,
            &dir.join(&file_name),
            &format!("data disk {}", disk.name),
            progress,
        )
        .with_context(|| format!("{field}: writing {file_name}"))?;

        for ((w, p), u) in disk.wheels.iter().zip(&pinned.wheels).zip(unpacked) {
            records.push(u.into_record(Some(&disk.name), &w.wheel, p.sha256, p.size));
        }
        for (f, p) in disk.files.iter().zip(&pinned.files) {
            records.push(record::Input::File {
                disk: Some(disk.name.clone()),
                path: f.path.to_string(),
                source: f.source.clone(),
                sha256: p.sha256,
                size: p.size,
            });
        }
        let minor = u32::try_from(d + 1)?;
        out.push(BuiltDisk {
            name: disk.name.clone(),
            mount: disk.mount.to_string(),
            file_name,
            device: disk_device(&m.boot.root_device, d).with_context(|| field.clone())?,
            minor,
            dm_device: format!("/dev/dm-{minor}"),
            image,
            inputs: records,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::disk_device;

    #[test]
    fn disks_follow_the_root_device() {
        assert_eq!(disk_device("/dev/vda", 0).unwrap(), "/dev/vdb");
        assert_eq!(disk_device("/dev/vda", 2).unwrap(), "/dev/vdd");
        assert_eq!(disk_device("/dev/vdy", 0).unwrap(), "/dev/vdz");
        assert!(disk_device("/dev/vdz", 0).is_err());
        assert!(disk_device("/dev/sda", 0)
            .unwrap_err()
            .to_string()
            .contains("virtio root"));
    }
}

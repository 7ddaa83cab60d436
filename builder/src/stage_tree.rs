//! Stage 2: [`VerifiedInputs`] (+ built components) → the root [`Tree`], its file contents in
//! the [`ContentStore`]: layers applied in order with OCI semantics, then the extra files,
//! wheels, components, data-disk mount points and the workload description.

use anyhow::Context as _;

use crate::content::ContentStore;
use crate::inputs::layer;
use crate::pin::PinError;
use crate::placement::{one_input_per_path, place_file, NewFile};
use crate::plan::Plan;
use crate::progress::{Meter, Progress};
use crate::stage_inputs::VerifiedInputs;
use crate::tree::{self, wheel, Tree};
use crate::workload::WORKLOAD_PATH;

/// Stage 2: applies the layers in order, then the extra files, into an in-memory tree whose
/// file contents go to `store`.
pub fn assemble_tree(
    plan: &Plan,
    inputs: &VerifiedInputs,
    components: &[crate::components::rust::Built],
    store: &ContentStore,
    progress: &dyn Progress,
) -> anyhow::Result<(Tree, Vec<wheel::Unpacked>)> {
    let mut tree = Tree::new();
    let n = inputs.layers.len();
    for (i, verified) in inputs.layers.iter().enumerate() {
        let l = &verified.blob;
        // Both errors below name the layer themselves ("layer sha256:...: ..."): no context
        // that would say it twice.
        let name = format!("sha256:{} ({})", l.digest, l.media_type);
        progress.message(&format!(
            "[{}/{n}] applying layer sha256:{} ({} bytes)",
            i + 1,
            l.digest,
            l.size
        ));
        // One read of the blob: its digest and the uncompressed stream's diff_id are checked
        // when the layer ends (a wrong digest is reported even if applying failed).
        layer::apply_checked(l, |reader| {
            let mut metered = LayerProgress {
                meter: Meter::new(progress, format!("layer {}/{n}", i + 1), l.size),
                reader,
            };
            let applied = tree::apply::apply_layer(&mut tree, &mut metered, &name, store);
            metered.meter.finish();
            applied
        })
        // The typed error itself, not its transparent wrapper, goes into the chain: the exit
        // code is chosen by the error's type (lib.rs `exit_code`).
        .map_err(|e| match (e, &verified.tar) {
            // A plain tar layer's pin is checked here: named by its manifest field, as the
            // other pin checks name theirs.
            (
                layer::CheckedError::Layer(layer::LayerError::Digest {
                    expected, found, ..
                }),
                Some(pinned),
            ) => anyhow::Error::new(PinError::Mismatch {
                field: pinned.field.clone(),
                source_path: pinned.source.clone(),
                expected,
                found,
            }),
            (layer::CheckedError::Layer(e), _) => anyhow::Error::new(e),
            (layer::CheckedError::Apply(e), _) => anyhow::Error::new(e),
        })?;
    }
    for (i, pinned) in &inputs.files {
        let entry = &plan.manifest.rootfs.files[*i];
        let field = format!("rootfs.files[{i}]");
        let mut f = fs_err::File::open(&pinned.path)?;
        let file = NewFile {
            path: &entry.path,
            mode: entry.mode.bits(),
            uid: entry.uid,
            gid: entry.gid,
        };
        place_file(
            &mut tree,
            store,
            &mut f,
            pinned.size,
            Some(&pinned.sha256),
            &file,
        )
        .with_context(|| format!("{field}: {}", entry.source))?;
    }
    let mut wheels = Vec::new();
    for (i, (w, pinned)) in plan
        .manifest
        .rootfs
        .wheels
        .iter()
        .zip(&inputs.rootfs_wheels)
        .enumerate()
    {
        progress.message(&format!("unpacking wheel {}", w.wheel));
        let placement = wheel::Placement {
            take: w.take.as_deref(),
            into: &w.into,
        };
        wheels.push(
            wheel::unpack(&pinned.path, &w.wheel, placement, &mut tree, store)
                .with_context(|| format!("rootfs.wheels[{i}]"))?,
        );
    }
    for (i, built) in components.iter().enumerate() {
        let entry = &plan.manifest.rootfs.rust[i];
        let mut f = fs_err::File::open(&built.path)?;
        let file = NewFile {
            path: &entry.path,
            mode: entry.mode.bits(),
            uid: 0,
            gid: 0,
        };
        place_file(
            &mut tree,
            store,
            &mut f,
            built.size,
            Some(&built.sha256),
            &file,
        )
        .with_context(|| format!("rootfs.rust[{i}]: {}", built.path.display()))?;
    }
    for (i, d) in plan.manifest.disks.iter().enumerate() {
        tree::apply::ensure_directory(&mut tree, d.mount.as_bytes(), "data disk mount points")
            .with_context(|| format!("disks[{i}].mount"))?;
    }
    if let Some(json) = &inputs.workload {
        let file = NewFile {
            path: WORKLOAD_PATH,
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        place_file(
            &mut tree,
            store,
            &mut json.as_slice(),
            json.len() as u64,
            None,
            &file,
        )?;
    }
    let m = &plan.manifest;
    let files = m
        .rootfs
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), format!("rootfs.files[{i}]")));
    let wheel_paths = wheels.iter().enumerate().flat_map(|(i, u)| {
        u.files
            .iter()
            .map(move |f| (f.path.as_str(), format!("rootfs.wheels[{i}]")))
    });
    let rust = m
        .rust_paths()
        .map(|(i, p)| (p, format!("rootfs.rust[{i}]")));
    let workload = inputs.workload.as_ref().map(|_| {
        (
            WORKLOAD_PATH,
            "the workload description (boot.init)".to_owned(),
        )
    });
    one_input_per_path(
        files.chain(wheel_paths).chain(rust).chain(workload),
        "the root file system",
    )?;
    Ok((tree, wheels))
}

/// A layer's decompressed stream, metered by the blob bytes read so far (the blob's size is
/// what is known in advance).
struct LayerProgress<'r, 'p> {
    meter: Meter<'p>,
    reader: &'r mut layer::LayerReader,
}

impl std::io::Read for LayerProgress<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.meter.at(self.reader.blob_position());
        Ok(n)
    }
}

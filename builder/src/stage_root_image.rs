//! Stages 3+4 for the root: the root [`Tree`] → `rootfs.img` (EROFS, then its dm-verity
//! area), with identifiers derived from the root's inputs ([`crate::seed`]).

use std::path::Path;

use measurements::Sha256Digest;

use crate::content::ContentStore;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::seed::{Part, Seed};
use crate::stage_inputs::VerifiedInputs;
use crate::tree::{wheel, Tree};
use crate::verity_image::{write_verity_image, VerityImage};
use crate::workload::WORKLOAD_PATH;

/// Stage 3+4: writes the EROFS image, then appends the dm-verity hash area to the same file.
#[allow(clippy::too_many_arguments)]
pub fn write_root_image(
    plan: &Plan,
    inputs: &VerifiedInputs,
    components: &[crate::components::rust::Built],
    wheels: &[wheel::Unpacked],
    tree: &Tree,
    store: ContentStore,
    path: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<VerityImage> {
    let m = &plan.manifest;
    let mut parts: Vec<Part<'_>> = inputs
        .layers
        .iter()
        .map(|l| Part::Layer(&l.blob.digest))
        .collect();
    for (i, p) in &inputs.files {
        let f = &m.rootfs.files[*i];
        parts.push(Part::File(&f.path, f.mode.bits(), f.uid, f.gid, &p.sha256));
    }
    let workload_digest = inputs.workload.as_deref().map(Sha256Digest::of);
    for w in wheels {
        for (f, mode) in w.files.iter().zip(&w.modes) {
            parts.push(Part::File(&f.path, *mode, 0, 0, &f.sha256));
        }
    }
    for (r, b) in m.rootfs.rust.iter().zip(components) {
        parts.push(Part::File(&r.path, r.mode.bits(), 0, 0, &b.sha256));
    }
    for d in &m.disks {
        parts.push(Part::Dir(&d.mount));
    }
    if let Some(d) = &workload_digest {
        parts.push(Part::File(WORKLOAD_PATH, 0o644, 0, 0, d));
    }
    let seed = Seed::new(m.image.source_date_epoch.seconds(), &parts);
    // `check`'s random-salt injection (test builds only) targets the root image only.
    #[cfg(feature = "test-inject")]
    let salt = crate::inject::salt(plan.inject.as_ref(), seed.verity_salt());
    #[cfg(not(feature = "test-inject"))]
    let salt = seed.verity_salt();
    write_verity_image(
        m.image.source_date_epoch.seconds(),
        &seed,
        salt,
        tree,
        store,
        path,
        "root file system",
        progress,
    )
}

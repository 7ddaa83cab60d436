//! The only place the stages are sequenced. Each stage is a module that takes the previous
//! stages' output and returns its own; `anyhow` context names the stage in every error.
//!
//! ```text
//! Plan ─stage_inputs─▶ VerifiedInputs ─stage_components─▶ Built binaries
//!   ─stage_tree─▶ Tree + ContentStore ─stage_root_image─▶ VerityImage (rootfs.img)
//!   ─stage_disks─▶ BuiltDisk (disk-*.img) ─stage_boot─▶ Boot (cmdline, vmlinuz, ...,
//!   measurements) ─stage_record─▶ Record (record.json) ─▶ renamed into place
//! ```

use anyhow::Context as _;
use measurements::record::Record;

use crate::content::ContentStore;
use crate::output::Staging;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::{
    stage_boot, stage_components, stage_disks, stage_inputs, stage_record, stage_root_image,
    stage_tree,
};

/// Runs the whole build, returning the record (also written as `record.json`).
pub fn build(plan: &Plan, progress: &dyn Progress) -> anyhow::Result<Record> {
    let inputs = stage_inputs::verify_inputs(plan).context("checking inputs")?;
    let components =
        stage_components::build_components(plan, progress).context("building Rust components")?;
    let staging = Staging::new(&plan.out_dir, plan.force)?;
    let dir = staging.path();
    let store = ContentStore::new(dir.join(".objects"))?;
    #[allow(unused_mut)] // Mutated only by the test-only injection.
    let (mut tree, rootfs_wheels) =
        stage_tree::assemble_tree(plan, &inputs, &components, &store, progress)
            .context("assembling the root tree")?;
    #[cfg(feature = "test-inject")]
    crate::inject::into_tree(plan.inject.as_ref(), &mut tree, &store)
        .context("test-only injection")?;
    let image = stage_root_image::write_root_image(
        plan,
        &inputs,
        &components,
        &rootfs_wheels,
        &tree,
        store,
        &dir.join("rootfs.img"),
        progress,
    )
    .context("writing rootfs.img")?;
    drop(tree);
    let disks = stage_disks::build_disks(plan, &inputs, dir, progress)?;
    let boot = stage_boot::write_boot(plan, &inputs, &image, &disks, dir, progress)?;
    let record = stage_record::assemble(
        plan,
        &inputs,
        &components,
        rootfs_wheels,
        &image,
        disks,
        boot,
    );
    fs_err::write(dir.join("record.json"), stage_record::record_json(&record)?)?;
    staging.commit()?;
    Ok(record)
}

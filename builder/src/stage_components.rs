//! Stage 1b: the manifest's `[[rootfs.rust]]` entries → built binaries
//! ([`crate::components::rust::Built`]), compiled with one recipe.

use anyhow::Context as _;

use crate::plan::Plan;
use crate::progress::Progress;

/// Stage 1b: builds the manifest's Rust components (cached by cargo in
/// `<workspace>/target/enclave-components`).
pub fn build_components(
    plan: &Plan,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<crate::components::rust::Built>> {
    let mut out = Vec::new();
    for (i, r) in plan.manifest.rootfs.rust.iter().enumerate() {
        progress.message(&format!(
            "building {}/{} (rootfs.rust[{i}]; cached in target/enclave-components, a first build can take minutes)",
            r.package, r.bin
        ));
        let workspace = fs_err::canonicalize(plan.base_dir.join(&r.workspace))
            .with_context(|| format!("rootfs.rust[{i}].workspace"))?;
        let target = workspace.join("target").join("enclave-components");
        let built = crate::components::rust::build(
            &workspace,
            &target,
            &plan.cargo_home,
            &r.package,
            &r.bin,
            &|line: &str| progress.message(line),
        )
        .with_context(|| format!("rootfs.rust[{i}]: building {}/{}", r.package, r.bin))?;
        out.push(built);
    }
    Ok(out)
}

//! Writes the demo manifest's generated inputs: `demo-inputs [DIR]` (default
//! `manifests/demo-inputs`), and prints their digests. The first run builds the guest kernel.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("manifests/demo-inputs"));
    let d = reproducibility_tests::demo::generate(
        &dir,
        &reproducibility_tests::demo::fixtures_dir(),
        &|l: &str| eprintln!("demo-inputs: {l}"),
    )?;
    println!("oci manifest  sha256:{}", d.oci_manifest);
    println!("extra.tar     {}", d.extra_tar);
    println!("vmlinuz       {}", d.kernel);
    println!("bzImage       {}", d.bzimage);
    Ok(())
}

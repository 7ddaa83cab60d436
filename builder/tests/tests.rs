//! The crate's one integration-test binary: one module per area.

// Test support: fixtures, running tools and the binary, the Debian kernel.
mod util;

// dm-verity hash area and root hash against the real `veritysetup` (cryptsetup).
mod verity;

// tree::apply: OCI layer semantics (whiteouts, replacement, path resolution, hostile tars).
mod apply;
// inputs: OCI image layouts, layer blobs, and flattening cross-checked against umoci.
mod oci;

// EROFS writer: images checked by fsck.erofs, dump.erofs, mkfs.erofs and the kernel.
mod erofs;

// `measure snp` against sev-snp-measure 0.0.13, run for real.
mod measure_snp;
// `measure tdx` / `measure pcr` against the spec walk-through script and systemd-measure.
mod measure_tdx_pcr;

// The initramfs (newc) writer against GNU cpio, determinism, the dump parser.
mod initramfs;

// The guest kernel: recipe, cache key, fragment check, and the pinned bzImage digest.
mod kernel;

// `attest check`: a real SEV-SNP report (virtee/sev data) against releases, via the binary.
mod attest;

// `lint`: pins (digests by sha256sum), bytecode from python3's py_compile, umoci layouts.
mod lint;

// The module graph of builder/src and measurements/src: no cycles.
mod module_graph;

// Manifest values with rules (image paths, modes, the epoch) refused at load, exit 3.
mod manifest_load;

//! Integration tests for enclave-builder: one binary, one module per area.

// tree::apply: OCI layer semantics (whiteouts, replacement, path resolution, hostile tars).
mod apply;
// inputs: OCI image layouts, layer blobs, and flattening cross-checked against umoci.
mod oci;

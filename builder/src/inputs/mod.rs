//! External inputs: OCI image layouts and tar layers, each verified against its pin.
//!
//! [`oci_layout::open_image`] selects an image in an OCI image layout by its manifest digest
//! and checks the manifest and config blobs; [`oci_layout::tar_blob`] pins a plain tar file.
//! Either yields [`oci_layout::LayerBlob`]s, which [`layer::open_layer`] hashes (before
//! anything parses them) and opens as a decompressed tar stream for [`crate::tree::apply`].
//! Wheels are pinned like any file and unpacked into the tree by [`crate::tree::wheel`].

pub mod gunzip;
pub mod layer;
pub mod oci_layout;

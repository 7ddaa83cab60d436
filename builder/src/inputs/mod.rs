//! External inputs: OCI image layouts and tar layers, each verified against its pin.

pub mod layer;
pub mod oci_layout;

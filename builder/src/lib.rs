//! enclave-builder: bit-identical confidential-VM images from a pinned manifest.
//!
//! Data flows one way, one module per stage:
//!
//! ```text
//! manifest (TOML) ──plan──▶ Plan ──inputs──▶ verified layer blobs + files
//!     ──tree::apply──▶ Tree (names, modes, owners, xattrs; contents in the ContentStore)
//!     ──erofs::write──▶ rootfs data area ──verity::build──▶ hash area + root hash
//!     ──record──▶ record.json, artifacts renamed into place by `output`
//! ```
//!
//! [`pipeline`] is the only place the stages are sequenced.
#![forbid(unsafe_code)]

pub mod content;
pub mod erofs;
pub mod inputs;
pub mod measure;
pub mod tree;
pub mod verity;

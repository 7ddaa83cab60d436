//! The crate's one integration-test binary: one module per area.

// EROFS images against erofs-utils 1.5 (`fsck.erofs`, `dump.erofs`) and the kernel.
mod erofs;

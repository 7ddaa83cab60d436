//! The crate's one integration-test binary: one module per area.

// dm-verity hash area and root hash against the real `veritysetup` (cryptsetup).
mod verity;

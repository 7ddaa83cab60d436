//! The builder's integration tests: one binary, one module per area.

// The initramfs (newc) writer against GNU cpio, determinism, the dump parser.
mod initramfs;

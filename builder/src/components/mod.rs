//! Components the builder compiles itself from this repository's Cargo workspace.

pub mod rust;

//! Applying layers (stub until the oci branch lands).
use std::io::Read;

use super::{Leaf, Tree};
use crate::content::ContentStore;

/// Errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Stub.
    #[error("not implemented")]
    Unimplemented,
}

/// Applies a layer.
pub fn apply_layer(
    _t: &mut Tree,
    _r: &mut dyn Read,
    _n: &str,
    _s: &ContentStore,
) -> Result<(), Error> {
    Err(Error::Unimplemented)
}

/// Inserts a file.
pub fn insert_file(_t: &mut Tree, _p: &[u8], _l: Leaf) -> Result<(), Error> {
    Err(Error::Unimplemented)
}

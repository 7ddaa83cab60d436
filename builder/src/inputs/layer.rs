//! Layer blobs (stub until the oci branch lands).
use std::io::Read;

use super::oci_layout::LayerBlob;

/// Errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Stub.
    #[error("not implemented")]
    Unimplemented,
}

/// Opens a layer.
pub fn open(_l: &LayerBlob) -> Result<Box<dyn Read>, Error> {
    Err(Error::Unimplemented)
}

//! OCI image layout reader (stub until the oci branch lands).
use std::path::{Path, PathBuf};

use measurements::Sha256Digest;

/// Errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Stub.
    #[error("not implemented")]
    Unimplemented,
}

/// A verified layer blob.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// Path.
    pub path: PathBuf,
    /// Digest.
    pub digest: Sha256Digest,
    /// Size.
    pub size: u64,
    /// Media type.
    pub media_type: String,
}

/// An image.
#[derive(Debug, Clone)]
pub struct OciImage {
    /// Manifest digest.
    pub manifest_digest: Sha256Digest,
    /// Config digest.
    pub config_digest: Sha256Digest,
    /// Layers.
    pub layers: Vec<LayerBlob>,
}

/// Opens an image.
pub fn open_image(_dir: &Path, _manifest: Option<&Sha256Digest>) -> Result<OciImage, Error> {
    Err(Error::Unimplemented)
}

/// A tar layer.
pub fn tar_layer(_path: &Path, _d: &Sha256Digest, _size: u64) -> Result<LayerBlob, Error> {
    Err(Error::Unimplemented)
}

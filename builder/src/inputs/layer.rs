//! Layer blobs: hash first, then open as a decompressed tar stream.
//!
//! [`open_layer`] reads the whole blob once to check its size and sha256 *before* any byte is
//! decompressed or parsed, so a wrong or tampered blob is reported as a wrong digest and never
//! reaches the tar parser. It then rewinds the same open file and decompresses it as a stream.
//! Decompression errors (corrupt or truncated gzip/zstd) surface from [`LayerReader::read`] as
//! `io::Error`s of kind `InvalidData` whose payload is a [`LayerError::Decompress`] naming the
//! layer and the decompressed offset, so whoever parses the tar can report both.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;

use measurements::Sha256Digest;
use sha2::{Digest as _, Sha256};

use super::oci_layout::{Compression, LayerBlob};

/// Why a layer blob cannot be opened or decompressed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The blob cannot be read.
    #[error("cannot read layer {path}: {source}")]
    Io {
        /// The blob file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The blob's size differs from its pin.
    #[error("layer {path} is {found} bytes, but {expected} were pinned; the blob is damaged or not the pinned one, fetch it again")]
    Size {
        /// The blob file.
        path: PathBuf,
        /// The pinned size.
        expected: u64,
        /// The size read.
        found: u64,
    },
    /// The blob's sha256 differs from its pin.
    #[error("layer {path} has sha256:{found}, but sha256:{expected} was pinned; the blob is damaged or not the pinned one, fetch it again")]
    Digest {
        /// The blob file.
        path: PathBuf,
        /// The pinned digest.
        expected: Sha256Digest,
        /// The digest of the bytes read.
        found: Sha256Digest,
    },
    /// The uncompressed stream's sha256 is not the config's `rootfs.diff_ids` entry.
    #[error("layer sha256:{digest} ({path}) uncompresses to sha256:{found}, but the image config's rootfs.diff_ids says sha256:{expected}; the config does not describe this layer, re-copy the image")]
    DiffId {
        /// The blob file.
        path: PathBuf,
        /// The blob's digest.
        digest: Sha256Digest,
        /// The config's diff_id.
        expected: Sha256Digest,
        /// The sha256 of the uncompressed stream.
        found: Sha256Digest,
    },
    /// The compressed stream is corrupt or truncated (its digest matched, so the pinned blob
    /// itself is bad: rebuild the layer).
    #[error("layer sha256:{digest} ({path}): {compression} data is corrupt or truncated after {offset} decompressed bytes: {source}")]
    Decompress {
        /// The blob file.
        path: PathBuf,
        /// The blob's digest.
        digest: Sha256Digest,
        /// The compression being undone.
        compression: Compression,
        /// Decompressed bytes delivered before the error.
        offset: u64,
        /// The decompressor's error.
        source: io::Error,
    },
}

/// A verified layer, read as its decompressed tar stream.
pub struct LayerReader {
    inner: Box<dyn Read + Send>,
    blob: LayerBlob,
    offset: u64,
    /// sha256 of the uncompressed bytes delivered so far (the diff_id).
    hasher: Sha256,
}

impl std::fmt::Debug for LayerReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerReader")
            .field("blob", &self.blob)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// Checks `blob`'s size and sha256, then opens it as a decompressed tar stream.
pub fn open_layer(blob: &LayerBlob) -> Result<LayerReader, LayerError> {
    let io_err = |source| LayerError::Io {
        path: blob.path.clone(),
        source,
    };
    let mut file = fs_err::File::open(&blob.path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        let Some(chunk) = buf.get(..n) else { break };
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        size = size.saturating_add(n as u64);
    }
    if size != blob.size {
        return Err(LayerError::Size {
            path: blob.path.clone(),
            expected: blob.size,
            found: size,
        });
    }
    let found = Sha256Digest::from(<[u8; 32]>::from(hasher.finalize()));
    if found != blob.digest {
        return Err(LayerError::Digest {
            path: blob.path.clone(),
            expected: blob.digest,
            found,
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    // Never read past the bytes that were hashed, even if the file grows meanwhile.
    let file = BufReader::with_capacity(1 << 16, file.take(blob.size));
    let inner: Box<dyn Read + Send> = match blob.compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(io_err)?)
        }
    };
    Ok(LayerReader {
        inner,
        blob: blob.clone(),
        offset: 0,
        hasher: Sha256::new(),
    })
}

impl LayerReader {
    /// The blob being read.
    pub fn blob(&self) -> &LayerBlob {
        &self.blob
    }

    /// Reads what the tar reader left (end-of-archive padding) and checks the uncompressed
    /// stream's sha256 against the config's `rootfs.diff_ids` entry, when there is one.
    pub fn finish(mut self) -> Result<(), LayerError> {
        io::copy(&mut self, &mut io::sink()).map_err(|source| LayerError::Io {
            path: self.blob.path.clone(),
            source,
        })?;
        let found = Sha256Digest(self.hasher.finalize().into());
        match self.blob.diff_id {
            Some(expected) if expected != found => Err(LayerError::DiffId {
                path: self.blob.path.clone(),
                digest: self.blob.digest,
                expected,
                found,
            }),
            _ => Ok(()),
        }
    }

    /// A name for messages: `sha256:HEX (PATH)`.
    pub fn name(&self) -> String {
        format!("sha256:{} ({})", self.blob.digest, self.blob.path.display())
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.offset = self.offset.saturating_add(n as u64);
                // `n` is at most `buf.len()` (the Read contract).
                self.hasher.update(buf.get(..n).unwrap_or_default());
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(source) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LayerError::Decompress {
                    path: self.blob.path.clone(),
                    digest: self.blob.digest,
                    compression: self.blob.compression,
                    offset: self.offset,
                    source,
                },
            )),
        }
    }
}

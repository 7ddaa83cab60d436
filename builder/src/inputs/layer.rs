//! Layer blobs: opened as a decompressed tar stream, checked against their pin.
//!
//! Two ways to check the pin:
//! - [`open_layer`] reads the whole blob once to check its size and sha256 *before* any byte is
//!   decompressed or parsed, so a wrong or tampered blob is reported as a wrong digest and never
//!   reaches the tar parser. It then rewinds the same open file and decompresses it as a stream
//!   (`lint` uses it: it only reads).
//! - [`apply_checked`] reads the blob once (the build uses it): the sha256 is computed from
//!   the compressed bytes as the decompressor pulls them, and checked when the layer ends,
//!   before the build goes on. What the layer's entries produced meanwhile lives only in the
//!   staging directory and the in-memory tree, which a refused layer ends with the build. If
//!   applying fails, the rest of the blob is still hashed and a wrong digest is reported
//!   instead of the parse error, so a tampered blob is always named as such.
//!
//! Decompression errors (corrupt or truncated gzip/zstd) surface from [`LayerReader::read`] as
//! `io::Error`s of kind `InvalidData` whose payload is a [`LayerError::Decompress`] naming the
//! layer and the decompressed offset, so whoever parses the tar can report both.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

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
    #[error("layer {path}: sha256 mismatch: sha256:{expected} was pinned, but the blob has sha256:{found}; the blob is damaged or not the pinned one: restore or fetch it again, or pin the new one on purpose")]
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
    /// For a reader from [`apply_checked`]: the blob's bytes hashed as they are read.
    raw: Option<RawCheck>,
}

/// The compressed side of a layer read once: what the decompressor has pulled from the file
/// so far, hashed, and a second handle on the same open file (sharing its position) to read
/// the rest at the end.
struct RawCheck {
    seen: Arc<Mutex<RawSeen>>,
    file: fs_err::File,
}

/// Bytes of the blob read so far and their running sha256.
struct RawSeen {
    hasher: Sha256,
    size: u64,
}

/// A reader over the blob file that feeds [`RawSeen`], never past the pinned size.
struct HashingFile {
    file: fs_err::File,
    seen: Arc<Mutex<RawSeen>>,
    limit: u64,
}

impl Read for HashingFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let left = self.limit.saturating_sub(seen.size);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let Some(dst) = buf.get_mut(..want) else {
            return Ok(0);
        };
        let n = self.file.read(dst)?;
        // `n` is at most `dst.len()` (the Read contract).
        seen.hasher.update(dst.get(..n).unwrap_or_default());
        seen.size = seen.size.saturating_add(n as u64);
        Ok(n)
    }
}

/// Either the layer was not the pinned blob, or applying it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckedError<E: std::error::Error + 'static> {
    /// The blob is not the pinned one (reported even when applying it failed too), or it
    /// cannot be read, or its uncompressed stream is not its diff_id.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Applying the (pinned) layer failed.
    #[error(transparent)]
    Apply(E),
}

/// Reads `blob` once: decompresses it into `apply` while hashing the compressed bytes, then
/// checks its size and sha256 and the uncompressed stream's diff_id. See the module docs for
/// why nothing unchecked reaches an artifact.
pub fn apply_checked<T, E: std::error::Error + 'static>(
    blob: &LayerBlob,
    apply: impl FnOnce(&mut LayerReader) -> Result<T, E>,
) -> Result<T, CheckedError<E>> {
    let mut reader = stream_layer(blob)?;
    match apply(&mut reader) {
        Ok(t) => {
            reader.finish()?;
            Ok(t)
        }
        Err(e) => {
            // A tampered blob is named as such, whatever its bytes made the parser say.
            reader.check_blob()?;
            Err(CheckedError::Apply(e))
        }
    }
}

/// Opens `blob` as a decompressed stream without reading it first; the blob's digest is
/// checked by [`LayerReader::finish`] / [`LayerReader::check_blob`].
fn stream_layer(blob: &LayerBlob) -> Result<LayerReader, LayerError> {
    let io_err = |source| LayerError::Io {
        path: blob.path.clone(),
        source,
    };
    let file = fs_err::File::open(&blob.path).map_err(io_err)?;
    let second = file.try_clone().map_err(io_err)?;
    let seen = Arc::new(Mutex::new(RawSeen {
        hasher: Sha256::new(),
        size: 0,
    }));
    let hashing = HashingFile {
        file,
        seen: Arc::clone(&seen),
        limit: blob.size,
    };
    let mut reader = decompress(blob, BufReader::with_capacity(1 << 16, hashing))?;
    reader.raw = Some(RawCheck { seen, file: second });
    Ok(reader)
}

/// The decompressing reader over `file`, for `blob`'s compression.
fn decompress(
    blob: &LayerBlob,
    file: impl io::BufRead + Send + 'static,
) -> Result<LayerReader, LayerError> {
    let inner: Box<dyn Read + Send> = match blob.compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(
            |source| LayerError::Io {
                path: blob.path.clone(),
                source,
            },
        )?),
    };
    Ok(LayerReader {
        inner,
        blob: blob.clone(),
        offset: 0,
        hasher: Sha256::new(),
        raw: None,
    })
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
    decompress(
        blob,
        BufReader::with_capacity(1 << 16, file.take(blob.size)),
    )
}

impl LayerReader {
    /// The blob being read.
    pub fn blob(&self) -> &LayerBlob {
        &self.blob
    }

    /// How far into the blob (compressed bytes) the decompressor has read, for progress; for
    /// a reader not from [`apply_checked`], the decompressed offset.
    pub fn blob_position(&self) -> u64 {
        match &self.raw {
            Some(raw) => raw.seen.lock().unwrap_or_else(PoisonError::into_inner).size,
            None => self.offset,
        }
    }

    /// Reads what the tar reader left (end-of-archive padding) and checks the uncompressed
    /// stream's sha256 against the config's `rootfs.diff_ids` entry, when there is one.
    /// For a reader from [`apply_checked`], the blob's size and sha256 are checked first.
    pub fn finish(mut self) -> Result<(), LayerError> {
        let drained = io::copy(&mut self, &mut io::sink());
        self.check_blob()?;
        drained.map_err(|source| LayerError::Io {
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

    /// For a reader from [`apply_checked`]: hashes the rest of the blob (what the
    /// decompressor has not pulled) and checks the blob's size and sha256 against its pin.
    /// A reader from [`open_layer`] was checked when it was opened.
    pub fn check_blob(&mut self) -> Result<(), LayerError> {
        let Some(raw) = &mut self.raw else {
            return Ok(());
        };
        let io_err = |source| LayerError::Io {
            path: self.blob.path.clone(),
            source,
        };
        let mut seen = raw.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // `raw.file` shares the decompressor's file position: it continues right after the
        // last byte hashed. Read to the end of the file, so a longer file is a size mismatch.
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match raw.file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            seen.hasher.update(chunk);
            seen.size = seen.size.saturating_add(n as u64);
        }
        if seen.size != self.blob.size {
            return Err(LayerError::Size {
                path: self.blob.path.clone(),
                expected: self.blob.size,
                found: seen.size,
            });
        }
        let found = Sha256Digest::from(<[u8; 32]>::from(seen.hasher.clone().finalize()));
        if found != self.blob.digest {
            return Err(LayerError::Digest {
                path: self.blob.path.clone(),
                expected: self.blob.digest,
                found,
            });
        }
        Ok(())
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

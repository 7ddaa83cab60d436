//! Layer blobs: opened as a decompressed tar stream, checked against their pin.
//!
//! Two ways to check the pin:
//! - [`open_layer`] reads the whole blob once to check its size and sha256 *before* any byte is
//!   decompressed or parsed, so a wrong or tampered blob is reported as a wrong digest and never
//!   reaches the tar parser. It then rewinds the same open file and decompresses it as a stream
//!   (`lint` uses it: it only reads).
//! - [`apply_checked`] reads the blob once (the build uses it) and checks its sha256 when the
//!   layer ends, before the build goes on. A compressed blob: a thread reads the compressed
//!   bytes, hashes them and hands them to a thread that decompresses them, which hands the
//!   uncompressed stream to the tar parser in chunks (the parser's thread hashes it for the
//!   diff_id as it reads), so reading, decompressing and parsing (with storing the files)
//!   overlap on the cores. An uncompressed blob: the parser's thread reads it and the other
//!   thread only hashes the same chunks; its diff_id is that checked digest, not hashed again.
//!   What the layer's entries produced meanwhile lives only in the staging directory and the
//!   in-memory tree, which a refused layer ends with the build. If applying fails, the rest of
//!   the blob is still hashed and a wrong digest is reported instead of the parse error, so a
//!   tampered blob is always named as such.
//!
//! Decompression errors (corrupt or truncated gzip/zstd) surface from [`LayerReader::read`] as
//! `io::Error`s of kind `InvalidData` whose payload is a [`LayerError::Decompress`] naming the
//! layer and the decompressed offset, so whoever parses the tar can report both.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    /// sha256 of the uncompressed bytes delivered so far (the diff_id); `None` for an
    /// uncompressed blob read by [`apply_checked`], whose diff_id is its checked digest.
    hasher: Option<Sha256>,
    /// For a reader from [`apply_checked`]: the blob's bytes hashed as they are read.
    raw: Option<RawCheck>,
    /// For a compressed blob read by [`apply_checked`]: the thread that decompresses it,
    /// until it is joined.
    inflater: Option<std::thread::JoinHandle<()>>,
}

/// The compressed side of a layer read once. For a compressed blob a thread reads it in
/// chunks, hashes them and hands them to the decompressor (never past the pinned size), so the
/// pin's hash runs on another core than decompressing and parsing; past the pinned size, and
/// once the decompressor is gone, it only hashes, to the end of the file (a longer file is a
/// size mismatch). For an uncompressed one the parser's thread reads and the thread only
/// hashes, then reads the rest itself ([`read_here`]).
struct RawCheck {
    /// The reading thread, until it is joined.
    thread: Option<std::thread::JoinHandle<io::Result<RawSeen>>>,
    /// What the thread saw, once joined; an I/O error as its kind and text.
    seen: Option<Result<RawSeen, (io::ErrorKind, String)>>,
    /// Bytes the decompressor has taken, for progress.
    taken: Arc<AtomicU64>,
}

/// The whole blob file's size and sha256.
#[derive(Clone, Copy)]
struct RawSeen {
    size: u64,
    sha256: [u8; 32],
}

/// Bytes per chunk the reading thread hands over: small enough to be in cache when the
/// decompressor takes them ([`crate::verity::PIECE_BYTES`] says why this size).
const AHEAD_CHUNK: usize = crate::verity::PIECE_BYTES;
/// Chunks in flight between the reading thread and the decompressor.
const AHEAD_CHUNKS: usize = 16;

/// The reading thread of [`RawCheck`]: reads `file` to its end, hashing every byte, and sends
/// the first `limit` bytes on `to_reader` while anyone listens, in the chunks the reader gave
/// back on `spares` when there are any.
fn read_ahead(
    mut file: fs_err::File,
    limit: u64,
    to_reader: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    spares: std::sync::mpsc::Receiver<Vec<u8>>,
) -> io::Result<RawSeen> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut to_reader = Some(to_reader);
    // The last chunk, when nobody took it.
    let mut kept = Vec::new();
    loop {
        let left = limit.saturating_sub(size);
        if left == 0 {
            // Ends the decompressor's input: nothing past the pinned size reaches it.
            to_reader = None;
        }
        let want = match to_reader {
            Some(_) => usize::try_from(left).unwrap_or(usize::MAX).min(AHEAD_CHUNK),
            None => AHEAD_CHUNK,
        };
        let mut chunk = reuse(std::mem::take(&mut kept), &spares, want);
        let n = match file.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if let Some(tx) = &to_reader {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
                return Err(e);
            }
        };
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        hasher.update(&chunk);
        size = size.saturating_add(n as u64);
        match &to_reader {
            Some(tx) => {
                if let Err(unsent) = tx.send(Ok(chunk)) {
                    // The decompressor is gone: hash the rest alone.
                    to_reader = None;
                    kept = unsent.0.unwrap_or_default();
                }
            }
            None => kept = chunk,
        }
    }
    Ok(RawSeen {
        size,
        sha256: hasher.finalize().into(),
    })
}

/// A chunk of `len` bytes to read into: `kept` if it was allocated, else one a reader gave
/// back, if any (their old bytes are overwritten, not zeroed first), else a new one. A layer
/// of 1 GB took 8,000 new zeroed 128 KiB chunks on each of its threads.
fn reuse(kept: Vec<u8>, spares: &std::sync::mpsc::Receiver<Vec<u8>>, len: usize) -> Vec<u8> {
    let mut chunk = if kept.capacity() > 0 {
        kept
    } else {
        spares.try_recv().unwrap_or_default()
    };
    chunk.resize(len, 0);
    chunk
}

/// The decompressor's input: the chunks [`read_ahead`] sends, in order. Each one read is given
/// back on `spent` for the sender to reuse.
struct AheadReader {
    chunks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    spent: std::sync::mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    taken: Arc<AtomicU64>,
}

impl Read for AheadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

/// `Read::read` for the readers here, whose `BufRead` does the work.
fn read_buffered(r: &mut impl io::BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let available = r.fill_buf()?;
    let n = available.len().min(buf.len());
    buf[..n].copy_from_slice(&available[..n]);
    r.consume(n);
    Ok(n)
}

/// `BufRead::consume` for the readers here: `at` moves on by `n`, at most to the chunk's end
/// (`len`), and `taken` counts the bytes.
fn advance(at: &mut usize, len: usize, n: usize, taken: &AtomicU64) {
    let n = n.min(len.saturating_sub(*at));
    *at += n;
    taken.fetch_add(n as u64, Ordering::Relaxed);
}

impl io::BufRead for AheadReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at >= self.chunk.len() {
            self.at = 0;
            match self.chunks.recv() {
                Ok(chunk) => {
                    let done = std::mem::replace(&mut self.chunk, chunk?);
                    // The sender may have stopped already; the chunk is then dropped.
                    let _ = self.spent.send(done);
                }
                // The thread stopped sending: the end of the pinned bytes.
                Err(_) => self.chunk.clear(),
            }
        }
        Ok(self.chunk.get(self.at..).unwrap_or_default())
    }

    fn consume(&mut self, n: usize) {
        advance(&mut self.at, self.chunk.len(), n, &self.taken);
    }
}

/// The inflating thread of [`stream_layer`]: reads `decoder` (the decompressed stream) in
/// chunks and sends them on `to_parser`, in order, until the stream ends, fails (the error is
/// sent as it is: [`LayerReader::read`] names the layer and the offset, which is the bytes sent
/// before it) or nobody listens. It only inflates: inflating one stream is the gzip layer's
/// bound (a core at 100 % while the parser's was at 17 %), so the diff_id is hashed by the
/// parser's thread as it reads ([`LayerReader::read`]).
fn inflate_ahead(
    mut decoder: Box<dyn Read + Send>,
    to_parser: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    spares: std::sync::mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let mut chunk = reuse(Vec::new(), &spares, AHEAD_CHUNK);
        let mut filled = 0;
        let mut failed = None;
        while filled < chunk.len() {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        chunk.truncate(filled);
        let end = filled < AHEAD_CHUNK;
        if !chunk.is_empty() && to_parser.send(Ok(chunk)).is_err() {
            // The parser is gone (it failed): the pin's check reads the rest alone.
            return;
        }
        if let Some(e) = failed {
            let _ = to_parser.send(Err(e));
            return;
        }
        if end {
            return;
        }
    }
}

/// Waits for `thread`; its panic goes on here.
fn join<T>(thread: std::thread::JoinHandle<T>) -> T {
    match thread.join() {
        Ok(t) => t,
        Err(panic) => std::panic::resume_unwind(panic),
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
    let taken = Arc::new(AtomicU64::new(0));
    if blob.compression == Compression::None {
        return read_here(blob, file, taken);
    }
    let (to_reader, chunks) = std::sync::mpsc::sync_channel(AHEAD_CHUNKS);
    let (spent, spares) = std::sync::mpsc::channel();
    let limit = blob.size;
    let thread = std::thread::Builder::new()
        .name("layer-sha256".into())
        .spawn(move || read_ahead(file, limit, to_reader, spares))
        .map_err(io_err)?;
    let ahead = AheadReader {
        chunks,
        spent,
        chunk: Vec::new(),
        at: 0,
        taken: Arc::clone(&taken),
    };
    let mut reader = decompress(blob, ahead)?;
    // Decompressing moves to its own thread: this thread parses the tar, hashes it for the
    // diff_id (`reader.hasher`, kept) and stores its files meanwhile.
    let (to_parser, decompressed) = std::sync::mpsc::sync_channel(AHEAD_CHUNKS);
    let (spent, spares) = std::sync::mpsc::channel();
    let decoder = std::mem::replace(&mut reader.inner, Box::new(io::empty()));
    let inflater = std::thread::Builder::new()
        .name("layer-inflate".into())
        .spawn(move || inflate_ahead(decoder, to_parser, spares))
        .map_err(io_err)?;
    reader.inner = Box::new(AheadReader {
        chunks: decompressed,
        spent,
        chunk: Vec::new(),
        at: 0,
        taken: Arc::new(AtomicU64::new(0)),
    });
    reader.inflater = Some(inflater);
    reader.raw = Some(RawCheck {
        thread: Some(thread),
        seen: None,
        taken,
    });
    Ok(reader)
}

/// An uncompressed blob for [`apply_checked`]: the parser's thread reads the file itself
/// ([`ReadHere`]) and a thread of its own only hashes what was read ([`hash_behind`]). The
/// pin's SHA-256 is the plain layer's bound (one stream); reading on that thread too kept it
/// from running at its own pace. The stream is the blob, so its diff_id is the digest
/// [`LayerReader::check_blob`] checks.
fn read_here(
    blob: &LayerBlob,
    file: fs_err::File,
    taken: Arc<AtomicU64>,
) -> Result<LayerReader, LayerError> {
    let io_err = |source| LayerError::Io {
        path: blob.path.clone(),
        source,
    };
    // The same open file: the hashing thread reads the rest from where the parser stopped.
    let rest = fs_err::File::from_parts(file.file().try_clone().map_err(io_err)?, file.path());
    let (to_hasher, chunks) = std::sync::mpsc::sync_channel(AHEAD_CHUNKS);
    let (spent, spares) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("layer-sha256".into())
        .spawn(move || hash_behind(rest, chunks, spent))
        .map_err(io_err)?;
    let here = ReadHere {
        file,
        left: blob.size,
        chunk: Arc::new(Vec::new()),
        at: 0,
        to_hasher: Some(to_hasher),
        spares,
        taken: Arc::clone(&taken),
    };
    let mut reader = decompress(blob, here)?;
    reader.hasher = None;
    reader.raw = Some(RawCheck {
        thread: Some(thread),
        seen: None,
        taken,
    });
    Ok(reader)
}

/// A chunk read by [`ReadHere`] for [`hash_behind`], or the read's error (kind and text).
type Sent = Result<Arc<Vec<u8>>, (io::ErrorKind, String)>;

/// The parser's side of [`read_here`]: reads the blob in chunks, never past its pinned size,
/// and sends each to the hashing thread before the parser sees it.
struct ReadHere {
    file: fs_err::File,
    /// Pinned bytes not read yet.
    left: u64,
    chunk: Arc<Vec<u8>>,
    at: usize,
    /// Dropped with the reader: the hashing thread then reads the rest of the file.
    to_hasher: Option<std::sync::mpsc::SyncSender<Sent>>,
    /// Chunks the hashing thread is done with.
    spares: std::sync::mpsc::Receiver<Vec<u8>>,
    taken: Arc<AtomicU64>,
}

impl Read for ReadHere {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

impl io::BufRead for ReadHere {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at >= self.chunk.len() && self.left > 0 {
            let want = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(AHEAD_CHUNK);
            // The last chunk again if the hashing thread is done with it, else one it gave
            // back, else a new one.
            let kept = Arc::try_unwrap(std::mem::take(&mut self.chunk)).unwrap_or_default();
            let mut next = reuse(kept, &self.spares, want);
            let n = loop {
                match self.file.read(&mut next) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // The pin's check reports it too (as the blob's I/O error).
                        if let Some(tx) = self.to_hasher.take() {
                            let _ = tx.send(Err((e.kind(), e.to_string())));
                        }
                        return Err(e);
                    }
                }
            };
            // Shorter than pinned: the end here; the pin's check reports the size.
            self.left = if n == 0 { 0 } else { self.left - n as u64 };
            next.truncate(n);
            self.chunk = Arc::new(next);
            self.at = 0;
            if let Some(tx) = &self.to_hasher {
                // Sent before the parser sees it. The thread only stops early by panicking,
                // which joining it reports.
                let _ = tx.send(Ok(Arc::clone(&self.chunk)));
            }
        }
        Ok(self.chunk.get(self.at..).unwrap_or_default())
    }

    fn consume(&mut self, n: usize) {
        advance(&mut self.at, self.chunk.len(), n, &self.taken);
    }
}

/// The hashing thread of [`read_here`]: hashes the chunks the parser's thread read, in
/// order, giving each back when it holds the last reference; once the reader is dropped, reads
/// the rest of `file` (which shares its offset with the reader's) to its end and hashes it too,
/// so a longer file is a size mismatch and a parser that stopped early still has every byte
/// checked.
fn hash_behind(
    mut file: fs_err::File,
    chunks: std::sync::mpsc::Receiver<Sent>,
    spent: std::sync::mpsc::Sender<Vec<u8>>,
) -> io::Result<RawSeen> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    for chunk in chunks {
        let chunk = chunk.map_err(|(kind, text)| io::Error::new(kind, text))?;
        hasher.update(&*chunk);
        size = size.saturating_add(chunk.len() as u64);
        if let Ok(chunk) = Arc::try_unwrap(chunk) {
            // The reader may be gone already.
            let _ = spent.send(chunk);
        }
    }
    size = size.saturating_add(crate::pin::hash_rest(&mut file, &mut hasher)?);
    Ok(RawSeen {
        size,
        sha256: hasher.finalize().into(),
    })
}

/// The decompressing reader over `file`, for `blob`'s compression.
fn decompress(
    blob: &LayerBlob,
    file: impl io::BufRead + Send + 'static,
) -> Result<LayerReader, LayerError> {
    let inner: Box<dyn Read + Send> = match blob.compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(super::gunzip::Gunzip::new(file)),
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
        hasher: Some(Sha256::new()),
        raw: None,
        inflater: None,
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
    let size = crate::pin::hash_rest(&mut file, &mut hasher).map_err(io_err)?;
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
            Some(raw) => raw.taken.load(Ordering::Relaxed),
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
        if let Some(inflater) = self.inflater.take() {
            // It sent everything (drained above) and has ended.
            join(inflater);
        }
        let found = match self.hasher {
            Some(hasher) => Sha256Digest(hasher.finalize().into()),
            // Uncompressed, from `apply_checked`: `check_blob` just checked these bytes' digest.
            None => self.blob.digest,
        };
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
        if let Some(thread) = raw.thread.take() {
            // Dropping the decompressor (or the inflating thread's receiving end, which ends
            // that thread and the decompressor with it) drops the reading thread's receiving
            // end: it hashes the rest of the file alone, to its end.
            self.inner = Box::new(io::empty());
            let joined = join(thread);
            raw.seen = Some(joined.map_err(|e| (e.kind(), e.to_string())));
        }
        let seen = match &raw.seen {
            Some(Ok(seen)) => *seen,
            Some(Err((kind, text))) => {
                return Err(LayerError::Io {
                    path: self.blob.path.clone(),
                    source: io::Error::new(*kind, text.clone()),
                })
            }
            // Joined above, or by an earlier call: not reached.
            None => {
                return Err(LayerError::Io {
                    path: self.blob.path.clone(),
                    source: io::Error::other("the layer's reading thread was lost"),
                })
            }
        };
        if seen.size != self.blob.size {
            return Err(LayerError::Size {
                path: self.blob.path.clone(),
                expected: self.blob.size,
                found: seen.size,
            });
        }
        let found = Sha256Digest(seen.sha256);
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
                if let Some(hasher) = &mut self.hasher {
                    // `n` is at most `buf.len()` (the Read contract).
                    hasher.update(buf.get(..n).unwrap_or_default());
                }
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

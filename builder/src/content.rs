//! The build's content store: regular-file contents spooled to disk.
//!
//! Layers arrive as compressed tar streams that cannot be seeked, and images carry gigabytes
//! of weights, so a file's bytes are streamed once from the layer into the store and streamed
//! again from the store into the image. Nothing is held whole in memory.
//!
//! The store is one pack file, appended to: writing 50,000 small files costs sequential
//! writes instead of 50,000 file creations. A layer's files are spooled unhashed and named by
//! where they are ([`Spooler`], [`Key::Spooled`]; each layer's spooler fills regions of the
//! pack reserved for it, so layers parsed at once do not wait on each other): the layer's pin
//! covers their bytes, and is checked before anything from the layer reaches an artifact.
//! Files whose own digest is checked (manifest files, built components, wheel members) are
//! hashed as they are stored and named by their sha256, through an in-memory index from digest
//! to extent ([`ContentStore::put`]; identical ones are kept once). The pack lives in the
//! build's staging directory and is deleted with it; it is a private spool, never a copy of
//! the image tree.
//! Its last reader, the image writer, releases each content once it is in the image
//! ([`ContentSource::release`]), which frees a large one's pages in the pack.
//!
//! A pinned local file (a data disk's weights) is not copied into the pack: [`ContentStore::adopt`]
//! records where it is, and [`ContentSource::open`] streams it from there. Its pin is checked
//! by whoever writes it into an image, from the image's own bytes ([`ContentStore::adopted`],
//! [`crate::verity_image`]): stage 1 only took its size ([`crate::pin::check_deferred`]), so
//! the weights are read once, and a file that is not the pinned one fails the build with the
//! pin error, naming its manifest field, before the image is committed.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::pin::PinnedFile;

/// A regular file's content, by size and key. The bytes come from a [`ContentSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Content {
    /// Length in bytes.
    pub size: u64,
    /// How the bytes are found.
    pub key: Key,
}

/// How a [`Content`]'s bytes are named in their [`ContentSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// By their SHA-256: contents whose digest is checked or recorded (pinned files, built
    /// components, wheel members, a data disk's weights), stored once however often they come.
    Sha256([u8; 32]),
    /// By where [`ContentStore::spool`] put them in its pack: a layer's files, whose bytes the
    /// layer's pin covers, so they are not hashed one by one.
    Spooled(u64),
}

impl Content {
    /// A content named by its SHA-256.
    pub fn hashed(size: u64, sha256: [u8; 32]) -> Self {
        Content {
            size,
            key: Key::Sha256(sha256),
        }
    }

    /// The SHA-256 of the bytes, when they are named by it.
    pub fn sha256(&self) -> Option<&[u8; 32]> {
        match &self.key {
            Key::Sha256(d) => Some(d),
            Key::Spooled(_) => None,
        }
    }
}

/// Where the bytes of a [`Content`] can be read from, as a stream.
pub trait ContentSource: Sync {
    /// Opens a reader over exactly `content.size` bytes, those `content.key` names.
    fn open(&self, content: &Content) -> std::io::Result<Box<dyn Read + '_>>;

    /// Reads `buf.len()` bytes of `content` from byte `offset` (the EROFS writer's inline
    /// tails, needed before the rest of the file is streamed). The bytes are not checked
    /// against anything here: whoever uses them compares them with the same range of a later
    /// [`ContentSource::open`] stream (the EROFS writer does, by their digest). A range past the
    /// end is an error of kind `UnexpectedEof`.
    ///
    /// The default opens a stream and skips to `offset`; sources that can seek override it.
    fn read_at(&self, content: &Content, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut reader = self.open(content)?;
        let skipped = io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
        if skipped < offset {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "content ends before the requested range",
            ));
        }
        reader.read_exact(buf)
    }

    /// The caller is done with `content`: it will not read it again. A source may free its
    /// bytes then ([`ContentStore`] does, for large contents in its pack). The default does
    /// nothing. Freeing is only an economy: a source that cannot free keeps the bytes.
    fn release(&self, _content: &Content) {}
}

/// A pack file of contents: spooled ones named by where they are, hashed ones by sha256.
#[derive(Debug)]
pub struct ContentStore {
    dir: PathBuf,
    pack: fs_err::File,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Where the next content goes.
    end: u64,
    /// Digest → offset of its bytes in the pack (the length is the content's size).
    index: HashMap<[u8; 32], u64>,
    /// Digest → a pinned file outside the pack holding those bytes ([`ContentStore::adopt`]).
    adopted: HashMap<[u8; 32], PinnedFile>,
    /// The appending functions' read buffer, kept between calls: a layer of 26,000 small
    /// files zeroed a new 64 KiB for each (1.7 GB of `memset`).
    scratch: Vec<u8>,
    /// The pack regions of the [`Spooler`]s still spooling: their bytes may still be in their
    /// buffers, so no content in them is read until they finish.
    open: Vec<std::ops::Range<u64>>,
    /// Contents [`ContentSource::release`]d: reading one again is an error, not the zeros a
    /// freed range of the pack would give.
    released: HashSet<Key>,
}

/// A [`Spooler`]'s write buffer: spooled bytes are written to the pack in whole
/// [`PACK_CHUNK`]s at multiples of it, whatever the files' sizes. Written file by file at
/// wherever each one started, the pack took twice the kernel time per byte that the image's
/// aligned 128 KiB writes take (ext4's per-page work on partly written pages); aligned, the
/// OCI build's system time fell by a quarter.
#[derive(Debug, Default)]
struct Pending {
    /// [`PACK_CHUNK`] bytes once allocated; the first `filled` are spooled bytes.
    buf: Vec<u8>,
    filled: usize,
    /// Where `buf[0]` belongs in the pack.
    at: u64,
}

/// The pack's write size and alignment for spooled bytes.
const PACK_CHUNK: usize = crate::verity::PIECE_BYTES;

/// The least a [`ContentSource::release`] frees from the pack: the pages wholly inside a
/// content, when they are at least this many bytes (one hole-punching call per MiB or more of
/// image, at most).
const RELEASE_MIN: u64 = 1 << 20;
/// The pack's page size for releasing: only whole pages are freed, so a neighbour's bytes in
/// a shared page stay.
const RELEASE_PAGE: u64 = 4096;

impl ContentStore {
    /// Uses (and creates) `dir` for the store's pack file.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs_err::create_dir_all(&dir)?;
        let pack = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("pack"))?;
        Ok(ContentStore {
            dir,
            pack,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("content store poisoned"))
    }

    /// Streams `reader` into the store, hashing it, and returns its content, named by its
    /// sha256, and that sha256 (for contents whose digest is checked: pinned files, wheel
    /// members). The stream
    /// must yield exactly `expected_size` bytes; a short or long stream is an error of kind
    /// `UnexpectedEof` / `InvalidData`, and leaves the store as it was. Contents already
    /// stored are kept once.
    pub fn put(
        &self,
        reader: &mut dyn Read,
        expected_size: u64,
    ) -> io::Result<(Content, [u8; 32])> {
        // One writer at a time: contents are appended at the end of the pack.
        let mut state = self.lock()?;
        let mut hasher = Sha256::new();
        let start = self.append(&mut state, reader, expected_size, Some(&mut hasher))?;
        let sha256: [u8; 32] = hasher.finalize().into();
        // The index is only looked up, never iterated, so HashMap order cannot reach output.
        if let std::collections::hash_map::Entry::Vacant(e) = state.index.entry(sha256) {
            e.insert(start);
            state.end = start + expected_size;
        }
        // A duplicate's bytes are simply overwritten by the next content.
        Ok((Content::hashed(expected_size, sha256), sha256))
    }

    /// Streams `reader` into the store without hashing it and returns its content, named by
    /// where it is ([`Key::Spooled`]), through a [`Spooler`] of its own (see there; a layer's
    /// files go through one spooler, which buffers across files).
    pub fn spool(&self, reader: &mut dyn Read, expected_size: u64) -> io::Result<Content> {
        let mut spooler = self.spooler();
        let content = spooler.spool(reader, expected_size)?;
        spooler.finish()?;
        Ok(content)
    }

    /// A [`Spooler`] for a stream of contents (a layer's files).
    pub fn spooler(&self) -> Spooler<'_> {
        Spooler {
            store: self,
            pending: Pending::default(),
            next: 0,
            region: 0..0,
        }
    }

    /// Writes `reader`'s bytes at the end of the pack (leaving `end` for the caller to move)
    /// and returns where they start.
    fn append(
        &self,
        state: &mut State,
        reader: &mut dyn Read,
        expected_size: u64,
        mut hasher: Option<&mut Sha256>,
    ) -> io::Result<u64> {
        let start = state.end;
        let mut pack = self.pack.file();
        pack.seek(SeekFrom::Start(start))?;
        let mut out = io::BufWriter::with_capacity(1 << 16, pack);
        let mut buf = std::mem::take(&mut state.scratch);
        buf.resize(1 << 16, 0);
        let mut exact = Exact::new(reader, expected_size);
        let result = loop {
            let got = match exact.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&buf[..got]);
            }
            if let Err(e) = out.write_all(&buf[..got]) {
                break Err(e);
            }
        };
        let flushed = out.flush();
        state.scratch = buf;
        result?;
        flushed?;
        exact.end()?;
        Ok(start)
    }

    /// Serves `file`'s content (its pinned size and sha256, returned) from where it is instead
    /// of copying it into the pack. Its bytes are **not** checked as they are read: whoever
    /// writes them into an artifact checks their sha256 against the pin
    /// ([`ContentStore::adopted`] says which contents need it). Files with the same pin are
    /// read from the first one adopted (only those bytes reach the image).
    pub fn adopt(&self, file: &PinnedFile) -> io::Result<Content> {
        let content = Content::hashed(file.size, file.sha256.0);
        // Only looked up, never iterated (as `index`).
        self.lock()?
            .adopted
            .entry(file.sha256.0)
            .or_insert_with(|| file.clone());
        Ok(content)
    }

    /// The pinned file `content` is served from, if it is an adopted one (and not also in
    /// the pack, whose contents were hashed as they were stored): its bytes must be checked
    /// against the pin by the reader ([`ContentStore::adopt`]).
    pub fn adopted(&self, content: &Content) -> io::Result<Option<PinnedFile>> {
        let Some(sha256) = content.sha256() else {
            return Ok(None);
        };
        let state = self.lock()?;
        if state.index.contains_key(sha256) {
            return Ok(None);
        }
        Ok(state.adopted.get(sha256).cloned())
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the store's directory and closes its pack, which frees the pack's pages (the
    /// pack's `close`, not the unlink, took 0.13 s for 1 GB: done where it can overlap or
    /// precede other work, not after the output is renamed into place).
    pub fn remove(self) -> io::Result<()> {
        fs_err::remove_dir_all(&self.dir)?;
        drop(self);
        Ok(())
    }

    /// Where `content`'s bytes are: in the pack from an offset, or in an adopted file.
    fn find(&self, content: &Content) -> io::Result<Place> {
        let state = self.lock()?;
        place(&state, content)
    }
}

/// Where `content`'s bytes are, as `state` records them ([`ContentStore::find`]).
fn place(state: &State, content: &Content) -> io::Result<Place> {
    if state.released.contains(&content.key) {
        return Err(io::Error::other(format!(
            "content {} was released: its reader said it was done with it, and its bytes \
             may be freed",
            described(content)
        )));
    }
    match &content.key {
        Key::Spooled(start) => {
            // Within what was spooled (a `Content` made up by hand may not be).
            let Some(end) = start.checked_add(content.size).filter(|&e| e <= state.end) else {
                return Err(not_stored(content, "in the store"));
            };
            // An empty content counts as its first byte: it too waits for its spooler.
            if state
                .open
                .iter()
                .any(|r| r.start < end.max(start.saturating_add(1)) && *start < r.end)
            {
                return Err(io::Error::other(format!(
                    "content {} is still being spooled: it is read only once its spooler \
                     has finished",
                    described(content)
                )));
            }
            Ok(Place::Pack(*start))
        }
        Key::Sha256(sha256) => {
            if let Some(start) = state.index.get(sha256) {
                return Ok(Place::Pack(*start));
            }
            let pinned = state
                .adopted
                .get(sha256)
                .ok_or_else(|| not_stored(content, "in the store"))?;
            Ok(Place::Adopted(pinned.path.clone()))
        }
    }
}

/// A content's stream, which must yield exactly `expected` bytes: reading past them is an
/// error of kind `InvalidData`, and [`Exact::end`] one of kind `UnexpectedEof` if fewer came.
struct Exact<'r> {
    reader: &'r mut dyn Read,
    size: u64,
    expected: u64,
}

impl<'r> Exact<'r> {
    fn new(reader: &'r mut dyn Read, expected: u64) -> Self {
        Exact {
            reader,
            size: 0,
            expected,
        }
    }

    /// One read into `buf` (an interrupted one is retried); 0 at the stream's end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = loop {
            match self.reader.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        self.size += got as u64;
        if self.size > self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entry is longer than its declared {} bytes", self.expected),
            ));
        }
        Ok(got)
    }

    /// Whether the stream ended at its declared size.
    fn end(&self) -> io::Result<()> {
        if self.size != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "entry ends after {} of its declared {} bytes",
                    self.size, self.expected
                ),
            ));
        }
        Ok(())
    }
}

/// [`ContentStore::find`]'s answer.
enum Place {
    Pack(u64),
    Adopted(PathBuf),
}

/// Spools a stream of contents into a region of the pack reserved for it, through its own
/// buffer written in whole aligned chunks ([`Pending`]), so that several spoolers (the layers
/// parsed at once, [`crate::stage_tree`]) never wait on each other: only reserving a region
/// takes the store's lock. A content is read only once its spooler has finished
/// ([`Spooler::finish`], or dropping it); a region's unused end goes back to the store when
/// nothing was reserved after it, so one spooler at a time fills the pack without gaps.
#[derive(Debug)]
pub struct Spooler<'s> {
    store: &'s ContentStore,
    pending: Pending,
    /// Where the next content goes, in `region`.
    next: u64,
    region: std::ops::Range<u64>,
}

/// The least a [`Spooler`] reserves at a time: a few region changes per GB spooled.
const REGION: u64 = 64 << 20;

impl Spooler<'_> {
    /// Streams `reader` into the pack without hashing it and returns its content, named by
    /// where it is ([`Key::Spooled`]): a layer's files, whose bytes the layer's pin covers
    /// (their per-file SHA-256 was a sixth of a 1 GB OCI build's CPU time). The stream must
    /// yield exactly `expected_size` bytes (a short or long stream is an error of kind
    /// `UnexpectedEof` / `InvalidData`, as for [`ContentStore::put`]), and a failed one leaves
    /// nothing: the next content goes where it started.
    pub fn spool(&mut self, reader: &mut dyn Read, expected_size: u64) -> io::Result<Content> {
        if self.region.is_empty() || self.region.end - self.next < expected_size {
            self.reserve(expected_size)?;
        }
        let start = self.next;
        let pending = &mut self.pending;
        if pending.filled == 0 {
            pending.at = start;
        }
        if pending.buf.is_empty() {
            pending.buf = vec![0; PACK_CHUNK];
        }
        match spool_into(&self.store.pack, pending, reader, expected_size) {
            Ok(()) => {
                self.next = start + expected_size;
                Ok(Content {
                    size: expected_size,
                    key: Key::Spooled(start),
                })
            }
            Err(e) => {
                // Nothing of it is kept: the next content goes where it started, over any of
                // its bytes already written. If some were, none of the buffer's bytes are from
                // before it (the buffer starts past `start`): it empties, and the next spool
                // sets `at`.
                pending.filled = usize::try_from(start.saturating_sub(pending.at))
                    .map_or(0, |before| before.min(pending.filled));
                Err(e)
            }
        }
    }

    /// Writes out the buffered bytes and ends the region: its contents can be read.
    pub fn finish(mut self) -> io::Result<()> {
        self.close()
    }

    /// Ends the current region (writing out the buffer first) and reserves one of at least
    /// `size` bytes at the pack's end.
    fn reserve(&mut self, size: u64) -> io::Result<()> {
        self.close()?;
        let mut state = self.store.lock()?;
        let start = state.end;
        let end = start
            .checked_add(size.max(REGION))
            .ok_or_else(|| io::Error::other("content store pack would pass 2^64 bytes"))?;
        state.end = end;
        state.open.push(start..end);
        drop(state);
        // The region's blocks are allocated at once (beyond the pack's end: its size still
        // grows only as bytes are written). Writing pages into allocated blocks spares ext4
        // its per-page delayed allocation (reserving, quota, extent-status entries): the OCI
        // build's system time fell by 0.15 s of its 0.6-0.8. Advice only: a file system
        // without `fallocate` allocates as it writes, the same bytes.
        let _ = rustix::fs::fallocate(
            self.store.pack.file(),
            rustix::fs::FallocateFlags::KEEP_SIZE,
            start,
            end - start,
        );
        self.region = start..end;
        self.next = start;
        Ok(())
    }

    /// Writes out the buffer and gives the region back: its unused end too, when it is the
    /// end of the pack. Does nothing the second time.
    fn close(&mut self) -> io::Result<()> {
        write_pending(&self.store.pack, &mut self.pending)?;
        if self.region.is_empty() {
            return Ok(());
        }
        let mut state = self.store.lock()?;
        let region = std::mem::replace(&mut self.region, self.next..self.next);
        state.open.retain(|r| *r != region);
        if state.end == region.end {
            state.end = self.next;
        }
        Ok(())
    }
}

impl Drop for Spooler<'_> {
    /// A spooler dropped without [`Spooler::finish`] (its caller failed) still writes out its
    /// buffer and gives its region back; an error here can only leave contents unreadable,
    /// which reading them reports.
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Reads `reader` to its end into `pending` (whose bytes end where the reader's start),
/// writing each chunk it fills to `pack`; the stream must be `expected_size` bytes (errors as
/// [`ContentStore::put`]).
fn spool_into(
    pack: &fs_err::File,
    pending: &mut Pending,
    reader: &mut dyn Read,
    expected_size: u64,
) -> io::Result<()> {
    let mut exact = Exact::new(reader, expected_size);
    loop {
        // The end of the pack's chunk that `pending.at` is in, in the buffer.
        let limit = PACK_CHUNK - (pending.at % PACK_CHUNK as u64) as usize;
        if pending.filled == limit {
            write_pending(pack, pending)?;
            continue;
        }
        match exact.read(&mut pending.buf[pending.filled..limit])? {
            0 => break,
            got => pending.filled += got,
        }
    }
    exact.end()
}

/// Writes `pending`'s bytes not written yet.
fn write_pending(pack: &fs_err::File, pending: &mut Pending) -> io::Result<()> {
    if pending.filled > 0 {
        pack.file()
            .write_all_at(&pending.buf[..pending.filled], pending.at)?;
        pending.at += pending.filled as u64;
        pending.filled = 0;
    }
    Ok(())
}

impl ContentSource for ContentStore {
    /// A positioned read of the pack, or of an adopted file (whoever writes the bytes checks
    /// adopted ones: [`ContentStore::adopt`]).
    fn read_at(&self, content: &Content, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > content.size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} bytes at {offset} are past the end of a {}-byte content",
                    buf.len(),
                    content.size
                ),
            ));
        }
        match self.find(content)? {
            Place::Pack(start) => self.pack.file().read_exact_at(buf, start + offset),
            Place::Adopted(path) => {
                let file = fs_err::File::open(&path)?;
                file.file().read_exact_at(buf, offset).map_err(|e| {
                    io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))
                })
            }
        }
    }

    /// Frees the pack's pages wholly inside `content` when they make at least [`RELEASE_MIN`]
    /// bytes (a hole punched in the pack), and refuses any later read of it. The image writer
    /// is the pack's last reader: without this, the pack's pages stayed in the page cache
    /// beside the image's until the pack was closed, twice the memory for the largest files.
    /// Errors are ignored: a file system that cannot punch holes keeps the bytes until the
    /// pack is closed, as before.
    fn release(&self, content: &Content) {
        let Ok(mut state) = self.lock() else {
            return;
        };
        let Ok(place) = place(&state, content) else {
            return;
        };
        state.released.insert(content.key);
        drop(state);
        let Place::Pack(start) = place else {
            return;
        };
        // Whole pages only (`find` checked the content is within the pack, and that its
        // spooler has written it out).
        let from = start.next_multiple_of(RELEASE_PAGE);
        let to = (start + content.size) / RELEASE_PAGE * RELEASE_PAGE;
        if to >= from + RELEASE_MIN {
            let _ = rustix::fs::fallocate(
                self.pack.file(),
                rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
                from,
                to - from,
            );
        }
    }

    fn open(&self, content: &Content) -> io::Result<Box<dyn Read + '_>> {
        match self.find(content)? {
            Place::Pack(offset) => Ok(Box::new(io::BufReader::with_capacity(
                1 << 16,
                Extent {
                    file: self.pack.file(),
                    offset,
                    remaining: content.size,
                },
            ))),
            // Unchecked here ([`ContentStore::adopt`]); the caller's length checks see any
            // bytes past the pinned size.
            Place::Adopted(path) => Ok(Box::new(fs_err::File::open(path)?)),
        }
    }
}

/// The error for a content a source (`place`) does not hold.
pub(crate) fn not_stored(content: &Content, place: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no content {} {place}", described(content)),
    )
}

/// A content for messages: by its sha256, or by its size and place in the pack.
fn described(content: &Content) -> String {
    match &content.key {
        Key::Sha256(d) => format!("with sha256 {}", hex::encode(d)),
        Key::Spooled(at) => format!("of {} bytes at {at}", content.size),
    }
}

/// A reader over one extent of the pack, using positioned reads (no shared cursor).
/// `FileExt::read_at` needs the std handle behind the `fs_err` one; its only error source is
/// the pack file, which the store names on open.
#[allow(clippy::disallowed_types)]
struct Extent<'a> {
    file: &'a std::fs::File,
    offset: u64,
    remaining: u64,
}

impl Read for Extent<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "content store pack is short",
            ));
        }
        self.offset += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes from `seed`: none zero (a hole reads as zeros), and each 4 KiB page unlike
    /// the next 255 (a page in the wrong place shows).
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8) | 1)
            .collect()
    }

    fn read_back(store: &ContentStore, c: &Content) -> Vec<u8> {
        let mut back = Vec::new();
        store.open(c).unwrap().read_to_end(&mut back).unwrap();
        back
    }

    #[test]
    fn round_trips_and_checks_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let (c, sha256) = store.put(&mut &b"hello"[..], 5).unwrap();
        // sha256("hello"), a well-known vector.
        assert_eq!(
            hex::encode(sha256),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(c, Content::hashed(5, sha256));
        assert_eq!(read_back(&store, &c), b"hello");
        assert_eq!(
            store.put(&mut &b"hell"[..], 5).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            store.put(&mut &b"hello!"[..], 5).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // Failed puts and duplicates leave earlier contents intact.
        let (w, _) = store.put(&mut &b"world, longer"[..], 13).unwrap();
        let (again, _) = store.put(&mut &b"hello"[..], 5).unwrap();
        let (e, _) = store.put(&mut &b""[..], 0).unwrap();
        assert_eq!(again, c);
        assert_eq!(read_back(&store, &c), b"hello");
        assert_eq!(read_back(&store, &w), b"world, longer");
        assert_eq!(read_back(&store, &e), b"");
    }

    #[test]
    fn adopted_files_are_read_in_place_and_left_to_the_writer_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let path = dir.path().join("weights");
        fs_err::write(&path, b"hello").unwrap();
        // sha256("hello"), as above; the pin, not a digest computed here.
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            &mut sha256,
        )
        .unwrap();
        let pinned = PinnedFile {
            source: "weights".into(),
            path: path.clone(),
            sha256: measurements::Sha256Digest(sha256),
            size: 5,
            field: "disks[0].files[0]".into(),
        };
        let c = store.adopt(&pinned).unwrap();
        assert_eq!(c, Content::hashed(5, sha256));
        assert_eq!(read_back(&store, &c), b"hello");
        // Not copied: the pack is empty.
        assert_eq!(
            fs_err::metadata(dir.path().join("objects/pack"))
                .unwrap()
                .len(),
            0
        );
        // Whoever writes it must check it: the store says which file it is.
        assert_eq!(
            store.adopted(&c).unwrap().map(|p| p.field),
            Some("disks[0].files[0]".into())
        );
        // The store does not check it when read (the image writer does, from the image's
        // bytes): other bytes pass through.
        fs_err::write(&path, b"jello").unwrap();
        assert_eq!(read_back(&store, &c), b"jello");
        // Bytes that are also in the pack are served from it, and need no check.
        let mut writer = b"hello".as_slice();
        let (packed, _) = store.put(&mut writer, 5).unwrap();
        assert_eq!(packed, c);
        assert_eq!(store.adopted(&c).unwrap(), None);
        assert_eq!(read_back(&store, &c), b"hello");
    }

    /// Positioned reads (the EROFS writer's inline tails) of packed, spooled and adopted contents;
    /// ranges past the end are `UnexpectedEof`.
    #[test]
    fn read_at_reads_ranges_of_packed_and_adopted_contents() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let (a, _) = store.put(&mut &b"first content"[..], 13).unwrap();
        let b = store
            .spool(&mut &b"second, after the first"[..], 23)
            .unwrap();
        let path = dir.path().join("adopted");
        fs_err::write(&path, b"adopted bytes").unwrap();
        let adopted = store
            .adopt(&PinnedFile {
                source: "adopted".into(),
                path: path.clone(),
                sha256: measurements::Sha256Digest(Sha256::digest(b"adopted bytes").into()),
                size: 13,
                field: "disks[0].files[0]".into(),
            })
            .unwrap();
        for (c, offset, expected) in [
            (&a, 6, &b"content"[..]),
            (&b, 0, b"second"),
            (&b, 18, b"first"),
            (&adopted, 8, b"bytes"),
            (&a, 13, b""),
        ] {
            let mut buf = vec![0; expected.len()];
            store.read_at(c, offset, &mut buf).unwrap();
            assert_eq!(buf, expected);
        }
        for (c, offset, len) in [(&a, 10, 4), (&b, 23, 1), (&adopted, 0, 14)] {
            let err = store.read_at(c, offset, &mut vec![0; len]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        }
    }

    /// A layer's files: stored unhashed, each where it was put (identical ones too), lengths
    /// checked as for hashed ones; a failed spool or a hashed duplicate between them leaves
    /// every earlier content readable; a spooled key the store did not give is refused.
    #[test]
    fn spooled_contents_are_named_by_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let one = store.spool(&mut &b"same bytes"[..], 10).unwrap();
        let (hashed, _) = store.put(&mut &b"hashed"[..], 6).unwrap();
        let two = store.spool(&mut &b"same bytes"[..], 10).unwrap();
        assert_eq!(one.key, Key::Spooled(0));
        assert_eq!(one.sha256(), None);
        assert_eq!(two.key, Key::Spooled(16));
        assert_ne!(one, two);
        assert_eq!(
            store.spool(&mut &b"short"[..], 6).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            store.spool(&mut &b"too long"[..], 3).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A duplicate of a hashed content is not kept: the next spool goes where it was.
        let (again, _) = store.put(&mut &b"hashed"[..], 6).unwrap();
        assert_eq!(again, hashed);
        let three = store.spool(&mut &b"third"[..], 5).unwrap();
        let empty = store.spool(&mut &b""[..], 0).unwrap();
        assert_eq!(three.key, Key::Spooled(26));
        for (c, bytes) in [
            (&one, &b"same bytes"[..]),
            (&hashed, b"hashed"),
            (&two, b"same bytes"),
            (&three, b"third"),
            (&empty, b""),
        ] {
            assert_eq!(read_back(&store, c), bytes);
        }
        assert_eq!(store.adopted(&one).unwrap(), None);
        let past = Content {
            size: 6,
            key: Key::Spooled(26),
        };
        let err = store.open(&past).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("of 6 bytes at 26"), "{err}");
    }

    /// A spooler's bytes are written in whole chunks at multiples of the chunk size: contents
    /// of every size across the chunks' edges follow each other and read back whole once it
    /// has finished (not before: they may still be in its buffer); a hashed content stored
    /// meanwhile goes after its region; a stream that fails after whole chunks were written
    /// leaves nothing of itself, and the next content goes where it started.
    #[test]
    fn spooled_contents_cross_the_write_chunks_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let chunk = PACK_CHUNK;
        let mut kept: Vec<(Content, Vec<u8>)> = Vec::new();
        let mut end = 0u64;
        let sizes = [
            100,
            chunk - 100,
            1,
            3 * chunk + 7,
            0,
            chunk,
            65_536,
            2 * chunk - 1,
        ];
        let mut spooler = store.spooler();
        let mut hashed = None;
        for (i, &len) in sizes.iter().enumerate() {
            let data = pattern(len, i as u8);
            let c = spooler.spool(&mut &data[..], len as u64).unwrap();
            assert_eq!(
                c.key,
                Key::Spooled(end),
                "content {i} starts where the last ended"
            );
            end += len as u64;
            kept.push((c, data));
            if i == 2 {
                let err = store.open(&kept[1].0).map(|_| ()).unwrap_err();
                assert!(err.to_string().contains("still being spooled"), "{err}");
            }
            if i == 4 {
                let data = pattern(5000, 99);
                let (c, _) = store.put(&mut &data[..], 5000).unwrap();
                assert!(
                    read_back(&store, &c) == data,
                    "read while the spooler is open"
                );
                hashed = Some((c, data));
            }
        }
        // Longer than declared after two chunks were written, shorter after three: neither
        // is kept.
        let long = pattern(2 * chunk + 10, 7);
        let err = spooler.spool(&mut &long[..], 2 * chunk as u64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let short = pattern(3 * chunk, 8);
        let err = spooler
            .spool(&mut &short[..], 4 * chunk as u64)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        let last = pattern(777, 9);
        let c = spooler.spool(&mut &last[..], 777).unwrap();
        assert_eq!(
            c.key,
            Key::Spooled(end),
            "after the failures, where they started"
        );
        kept.push((c, last));
        spooler.finish().unwrap();
        kept.extend(hashed);
        for (i, (c, data)) in kept.iter().enumerate() {
            assert!(read_back(&store, c) == *data, "content {i} differs");
        }
        let mut tail = vec![0u8; 77];
        store
            .read_at(&kept[3].0, 3 * chunk as u64 - 70, &mut tail)
            .unwrap();
        assert!(
            tail[..] == kept[3].1[3 * chunk - 70..],
            "a range across a chunk's edge"
        );
    }

    /// Two spoolers at once, on two threads, each with contents larger than a region: each
    /// content reads back whole once both have finished, the regions do not overlap, and the
    /// store's own spooling goes after them.
    #[test]
    fn spoolers_on_two_threads_keep_their_contents_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let sizes = [
            5,
            PACK_CHUNK + 3,
            REGION as usize - 1000,
            3000,
            REGION as usize + 5,
            0,
            70_000,
        ];
        let spool_all = |seed: u8| {
            let mut spooler = store.spooler();
            let kept: Vec<(Content, Vec<u8>)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &len)| {
                    let data = pattern(len, seed.wrapping_add(i as u8));
                    (spooler.spool(&mut &data[..], len as u64).unwrap(), data)
                })
                .collect();
            spooler.finish().unwrap();
            kept
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| spool_all(1));
            let b = s.spawn(|| spool_all(101));
            (a.join().unwrap(), b.join().unwrap())
        });
        let mut ranges = Vec::new();
        for (c, data) in a.iter().chain(&b) {
            assert!(read_back(&store, c) == *data, "a content differs");
            let Key::Spooled(at) = c.key else {
                panic!("spooled contents are named by where they are");
            };
            ranges.push(at..at + c.size);
        }
        ranges.retain(|r| !r.is_empty());
        ranges.sort_by_key(|r| r.start);
        assert!(
            ranges.windows(2).all(|w| w[0].end <= w[1].start),
            "{ranges:?}"
        );
        let last = ranges.last().unwrap().end;
        let c = store.spool(&mut &b"after"[..], 5).unwrap();
        assert_eq!(
            c.key,
            Key::Spooled(last),
            "after the last spooler's contents"
        );
        assert_eq!(read_back(&store, &c), b"after");
    }

    /// Where the pack has a hole and where its data resumes, from `at` (SEEK_HOLE, SEEK_DATA).
    fn hole_from(store: &ContentStore, at: u64) -> (u64, u64) {
        let pack = store.pack.file();
        let hole = rustix::fs::seek(pack, rustix::fs::SeekFrom::Hole(at)).unwrap();
        // No data after the hole (it is the end of the file): ENXIO.
        let data = match rustix::fs::seek(pack, rustix::fs::SeekFrom::Data(hole)) {
            Err(rustix::io::Errno::NXIO) => hole,
            other => other.unwrap(),
        };
        (hole, data)
    }

    /// A released content's whole pages become a hole in the pack when they make at least
    /// `RELEASE_MIN`, and nothing else does: its neighbours' bytes in the pages it shares with
    /// them, a small content's pages, a hashed content's bytes until it is released. A
    /// released content cannot be read again.
    #[test]
    fn released_contents_free_their_whole_pages_and_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let page = RELEASE_PAGE as usize;
        // An unaligned small one first, so the large one starts and ends inside pages.
        let small = pattern(page + 100, 1);
        let large = pattern(RELEASE_MIN as usize + 3 * page + 7, 2);
        let after = pattern(2 * page, 3);
        let mut kept = Vec::new();
        for data in [&small, &large, &after] {
            kept.push(store.spool(&mut &data[..], data.len() as u64).unwrap());
        }
        let hashed = pattern(RELEASE_MIN as usize + 2 * page, 4);
        let (h, _) = store.put(&mut &hashed[..], hashed.len() as u64).unwrap();
        let pack_len = (small.len() + large.len() + after.len() + hashed.len()) as u64;
        assert_eq!(
            hole_from(&store, 0).0,
            pack_len,
            "no hole before any release"
        );

        store.release(&kept[0]);
        assert_eq!(hole_from(&store, 0).0, pack_len, "a small content stays");
        store.release(&kept[1]);
        let start = small.len() as u64;
        let end = start + large.len() as u64;
        let (hole, data) = hole_from(&store, 0);
        assert_eq!(
            (hole, data),
            (
                start.next_multiple_of(RELEASE_PAGE),
                end / RELEASE_PAGE * RELEASE_PAGE
            ),
            "the large content's whole pages, exactly"
        );
        assert!(
            read_back(&store, &kept[2]) == after,
            "the next content is intact"
        );
        assert!(
            read_back(&store, &h) == hashed,
            "the hashed content is intact"
        );
        for c in &kept[..2] {
            let err = store.open(c).map(|_| ()).unwrap_err();
            assert!(err.to_string().contains("was released"), "{err}");
        }
        store.release(&h);
        let from = (pack_len - hashed.len() as u64).next_multiple_of(RELEASE_PAGE);
        assert_eq!(
            hole_from(&store, data).0,
            from,
            "the hashed content's pages"
        );
        let mut one = [0u8; 1];
        let err = store.read_at(&h, 0, &mut one).unwrap_err();
        assert!(err.to_string().contains("was released"), "{err}");
    }
}

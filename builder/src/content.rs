//! The build's content store: regular-file contents spooled to disk, addressed by sha256.
//!
//! Layers arrive as compressed tar streams that cannot be seeked, and images carry gigabytes
//! of weights, so a file's bytes are streamed once from the layer into the store (hashing on
//! the way) and streamed again from the store into the image. Nothing is held whole in memory.
//!
//! The store is one append-only pack file plus an in-memory index from digest to extent:
//! writing 50,000 small files costs one sequential write instead of 50,000 file creations, and
//! identical contents are kept once. The pack lives in the build's staging directory and is
//! deleted with it; it is a private spool, never a copy of the image tree.
//!
//! A pinned local file (a data disk's weights) is not copied into the pack: [`ContentStore::adopt`]
//! records where it is, and [`ContentSource::open`] streams it from there. Its pin is checked
//! by whoever writes it into an image, from the image's own bytes ([`ContentStore::adopted`],
//! [`crate::verity_image`]): stage 1 only took its size ([`crate::pin::check_deferred`]), so
//! the weights are read once, and a file that is not the pinned one fails the build with the
//! pin error, naming its manifest field, before the image is committed.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::pin::PinnedFile;

/// A regular file's content, by size and digest. The bytes come from a [`ContentSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Content {
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// Where the bytes of a [`Content`] can be read from, as a stream.
pub trait ContentSource: Sync {
    /// Opens a reader over exactly `content.size` bytes whose sha256 is `content.sha256`.
    fn open(&self, content: &Content) -> std::io::Result<Box<dyn Read + '_>>;

    /// Reads `buf.len()` bytes of `content` from byte `offset` (the EROFS writer's inline
    /// tails, needed before the rest of the file is streamed). The bytes are not checked
    /// against `content.sha256` here: whoever uses them checks them against a later
    /// [`ContentSource::open`] stream, which is. A range past the end is an error of kind
    /// `UnexpectedEof`.
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
}

/// A pack file of contents addressed by sha256.
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
}

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

    /// Streams `reader` into the store and returns its content descriptor. The stream must
    /// yield exactly `expected_size` bytes; a short or long stream is an error of kind
    /// `UnexpectedEof` / `InvalidData`, and leaves the store as it was.
    pub fn put(&self, reader: &mut dyn Read, expected_size: u64) -> io::Result<Content> {
        // One writer at a time: contents are appended at the end of the pack.
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("content store poisoned"))?;
        let start = state.end;
        let mut pack = self.pack.file();
        pack.seek(SeekFrom::Start(start))?;
        let mut out = io::BufWriter::with_capacity(1 << 16, pack);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        let result = loop {
            let got = match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            size += got as u64;
            if size > expected_size {
                break Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("entry is longer than its declared {expected_size} bytes"),
                ));
            }
            hasher.update(&buf[..got]);
            if let Err(e) = out.write_all(&buf[..got]) {
                break Err(e);
            }
        };
        let flushed = out.flush();
        result?;
        flushed?;
        if size != expected_size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry ends after {size} of its declared {expected_size} bytes"),
            ));
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        // The index is only looked up, never iterated, so HashMap order cannot reach output.
        if let std::collections::hash_map::Entry::Vacant(e) = state.index.entry(sha256) {
            e.insert(start);
            state.end = start + size;
        }
        // A duplicate's bytes are simply overwritten by the next content.
        Ok(Content { size, sha256 })
    }

    /// Serves `file`'s content (its pinned size and sha256, returned) from where it is instead
    /// of copying it into the pack. Its bytes are **not** checked as they are read: whoever
    /// writes them into an artifact checks their sha256 against the pin
    /// ([`ContentStore::adopted`] says which contents need it). Files with the same pin are
    /// read from the first one adopted (only those bytes reach the image).
    pub fn adopt(&self, file: &PinnedFile) -> io::Result<Content> {
        let content = Content {
            size: file.size,
            sha256: file.sha256.0,
        };
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("content store poisoned"))?;
        // Only looked up, never iterated (as `index`).
        state
            .adopted
            .entry(content.sha256)
            .or_insert_with(|| file.clone());
        Ok(content)
    }

    /// The pinned file `content` is served from, if it is an adopted one (and not also in
    /// the pack, whose contents were hashed as they were stored): its bytes must be checked
    /// against the pin by the reader ([`ContentStore::adopt`]).
    pub fn adopted(&self, content: &Content) -> io::Result<Option<PinnedFile>> {
        let state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("content store poisoned"))?;
        if state.index.contains_key(&content.sha256) {
            return Ok(None);
        }
        Ok(state.adopted.get(&content.sha256).cloned())
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl ContentSource for ContentStore {
    /// A positioned read of the pack, or of an adopted file (the stream [`ContentSource::open`]
    /// gives still checks the whole of it).
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
        let state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("content store poisoned"))?;
        if let Some(start) = state.index.get(&content.sha256) {
            return self.pack.file().read_exact_at(buf, start + offset);
        }
        let path = &state
            .adopted
            .get(&content.sha256)
            .ok_or_else(|| not_stored(content))?
            .path;
        let file = fs_err::File::open(path)?;
        file.file()
            .read_exact_at(buf, offset)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))
    }

    fn open(&self, content: &Content) -> io::Result<Box<dyn Read + '_>> {
        let state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("content store poisoned"))?;
        if !state.index.contains_key(&content.sha256) {
            if let Some(pinned) = state.adopted.get(&content.sha256) {
                // Unchecked here ([`ContentStore::adopt`]); the caller's length checks see
                // any bytes past the pinned size.
                let file = fs_err::File::open(&pinned.path)?;
                return Ok(Box::new(file));
            }
        }
        let offset = *state
            .index
            .get(&content.sha256)
            .ok_or_else(|| not_stored(content))?;
        Ok(Box::new(io::BufReader::with_capacity(
            1 << 16,
            Extent {
                file: self.pack.file(),
                offset,
                remaining: content.size,
            },
        )))
    }
}

fn not_stored(content: &Content) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no content with sha256 {} in the store",
            hex::encode(content.sha256)
        ),
    )
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

    fn read_back(store: &ContentStore, c: &Content) -> Vec<u8> {
        let mut back = Vec::new();
        store.open(c).unwrap().read_to_end(&mut back).unwrap();
        back
    }

    #[test]
    fn round_trips_and_checks_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let c = store.put(&mut &b"hello"[..], 5).unwrap();
        // sha256("hello"), a well-known vector.
        assert_eq!(
            hex::encode(c.sha256),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
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
        let w = store.put(&mut &b"world, longer"[..], 13).unwrap();
        let again = store.put(&mut &b"hello"[..], 5).unwrap();
        let e = store.put(&mut &b""[..], 0).unwrap();
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
        assert_eq!(c, Content { size: 5, sha256 });
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
        let packed = store.put(&mut writer, 5).unwrap();
        assert_eq!(packed, c);
        assert_eq!(store.adopted(&c).unwrap(), None);
        assert_eq!(read_back(&store, &c), b"hello");
    }

    /// Positioned reads (the EROFS writer's inline tails) of packed and adopted contents;
    /// ranges past the end are `UnexpectedEof`.
    #[test]
    fn read_at_reads_ranges_of_packed_and_adopted_contents() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let a = store.put(&mut &b"first content"[..], 13).unwrap();
        let b = store.put(&mut &b"second, after the first"[..], 23).unwrap();
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
}

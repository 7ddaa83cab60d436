//! The build's content store: regular-file contents spooled to disk, named by sha256.
//!
//! Layers arrive as compressed tar streams that cannot be seeked, and images carry gigabytes
//! of weights, so a file's bytes are streamed once from the layer into the store (hashing on
//! the way) and streamed again from the store into the image. Nothing is held whole in memory.
//! The store lives in the build's temporary directory and is deleted with it; its files are
//! private spool files named by digest, never a copy of the image tree.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::tree::{Content, ContentSource};

/// A directory of blobs named by their sha256.
#[derive(Debug)]
pub struct ContentStore {
    dir: PathBuf,
    next_tmp: std::sync::atomic::AtomicU64,
}

impl ContentStore {
    /// Uses (and creates) `dir` as the store.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs_err::create_dir_all(&dir)?;
        Ok(ContentStore { dir, next_tmp: 0.into() })
    }

    /// Streams `reader` into the store and returns its content descriptor. The stream must
    /// yield exactly `expected_size` bytes; a short or long stream is an error of kind
    /// `UnexpectedEof` / `InvalidData`.
    pub fn put(&self, reader: &mut dyn Read, expected_size: u64) -> io::Result<Content> {
        let n = self.next_tmp.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!("tmp-{n}"));
        let mut file = fs_err::File::create(&tmp)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let got = reader.read(&mut buf)?;
            if got == 0 {
                break;
            }
            let chunk = &buf[..got];
            hasher.update(chunk);
            file.write_all(chunk)?;
            size += got as u64;
            if size > expected_size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("entry is longer than its declared {expected_size} bytes"),
                ));
            }
        }
        if size != expected_size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry ends after {size} of its declared {expected_size} bytes"),
            ));
        }
        file.flush()?;
        drop(file);
        let sha256: [u8; 32] = hasher.finalize().into();
        fs_err::rename(&tmp, self.path_of(&sha256))?;
        Ok(Content { size, sha256 })
    }

    fn path_of(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(sha256))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl ContentSource for ContentStore {
    fn open(&self, content: &Content) -> io::Result<Box<dyn Read + '_>> {
        let file = fs_err::File::open(self.path_of(&content.sha256))?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 16, file).take(content.size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut back = Vec::new();
        store.open(&c).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello");
        assert_eq!(
            store.put(&mut &b"hell"[..], 5).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            store.put(&mut &b"hello!"[..], 5).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}

//! Writing an image file past the page cache: [`DirectWriter`].
//!
//! A build writes each image once and syncs it before renaming it into place, so it never
//! needs the image's pages in memory. Written through the page cache, every written page is
//! allocated, copied into and written back by the kernel, and on the 2-core development VM
//! that cost more than the hashing: `copy_folio_from_iter_atomic` alone was a third of the
//! 4 GiB weights build's CPU samples (3.4 s), the pages being memory the VM had returned to
//! its host. With `O_DIRECT` the disk takes the bytes from a few reused, aligned buffers: `dd`
//! with 1 MiB writes put 1 GiB on the disk in 0.43-0.49 s (2.2-2.5 GB/s), against 0.5-3.2 s
//! for a buffered write and `fsync` of the same GiB.
//!
//! The bytes on disk are the same either way; a file system that refuses `O_DIRECT` (to open,
//! or for a write) gets buffered writes instead, whose writeback starts as they accumulate.

use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};

use fs_err::os::unix::fs::{FileExt as _, OpenOptionsExt as _};

/// Bytes per write: large enough that the disk's per-request latency is small against the
/// transfer (`dd` with `O_DIRECT`: 1.1 GB/s in 128 KiB writes, 2.2 in 1 MiB ones).
pub const PIECE: usize = 1 << 20;

/// `O_DIRECT`'s alignment of the buffer, the file offset and the length: a 4 KiB page, which
/// every Linux block device's logical block size divides.
pub const ALIGN: usize = 4096;

/// Pieces queued for the writing thread, beyond the one it writes and the one being filled.
const QUEUE: usize = 6;

/// How many bytes buffered writes (the fallback) let accumulate before their writeback is
/// started (`posix_fadvise(POSIX_FADV_DONTNEED)`, which starts it without waiting): the disk
/// works while the build computes, and the dirty pages stay far below the kernel's limits.
/// Stop 9 measured it for 1 GiB in 128 KiB writes then `fsync`: 0.96-1.07 s, 0.54-0.68 s
/// with it; 8 MiB was faster than 2 and 32.
const WRITE_BEHIND: u64 = 8 << 20;

/// A new file written from its start, in [`PIECE`]s, by a thread of its own with `O_DIRECT`.
///
/// [`Write::flush`] does nothing: the last, partial piece goes with [`DirectWriter::finish`],
/// which waits for every write and returns the file, to be synced by the caller. Dropped
/// without `finish` (its caller failed), it stops the thread and leaves the file partly
/// written, for the caller to remove.
pub struct DirectWriter {
    file: fs_err::File,
    piece: Piece,
    /// To the writing thread, until `finish`.
    to_thread: Option<SyncSender<Piece>>,
    spares: Receiver<Piece>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
    /// Bytes taken so far.
    written: u64,
}

impl DirectWriter {
    /// Creates (or truncates) `path` for writing, with `O_DIRECT` where its file system
    /// takes it.
    pub fn create(path: &Path) -> io::Result<Self> {
        let open = |flags: rustix::fs::OFlags| {
            fs_err::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(flags.bits() as i32)
                .open(path)
        };
        let (file, direct) = match open(rustix::fs::OFlags::DIRECT) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                (open(rustix::fs::OFlags::empty())?, false)
            }
            Err(e) => return Err(e),
        };
        let theirs = file.try_clone()?;
        let (to_thread, pieces) = std::sync::mpsc::sync_channel(QUEUE);
        let (spent, spares) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("image-write".into())
            .spawn(move || write_pieces(&theirs, direct, pieces, &spent))?;
        Ok(DirectWriter {
            file,
            piece: Piece::new(0),
            to_thread: Some(to_thread),
            spares,
            thread: Some(thread),
            written: 0,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the last piece, waits for every write and returns the file (not yet synced)
    /// and its size.
    pub fn finish(mut self) -> io::Result<(fs_err::File, u64)> {
        if !self.piece.is_empty() {
            self.ship()?;
        }
        self.to_thread = None;
        self.join()?;
        let file = self.file.try_clone()?;
        Ok((file, self.written))
    }

    /// Hands the current piece to the thread and takes a spare (or a new one).
    fn ship(&mut self) -> io::Result<()> {
        let next = match self.spares.try_recv() {
            Ok(mut spare) => {
                spare.reset(self.written);
                spare
            }
            Err(_) => Piece::new(self.written),
        };
        let full = std::mem::replace(&mut self.piece, next);
        let sent = self
            .to_thread
            .as_ref()
            .is_some_and(|to| to.send(full).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.to_thread = None;
        self.join()?;
        Err(io::Error::other(format!(
            "{}: the writing thread stopped",
            self.file.path().display()
        )))
    }

    /// Waits for the thread; its error, or its panic, goes on here.
    fn join(&mut self) -> io::Result<()> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

impl Write for DirectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.piece.take(buf);
        self.written += n as u64;
        if self.piece.is_full() {
            self.ship()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        self.to_thread = None;
        if let Some(thread) = self.thread.take() {
            // An error is the caller's to report (it is failing already); a panic is
            // dropped with the thread.
            let _ = thread.join();
        }
    }
}

/// The writing thread: writes each piece at its offset, `O_DIRECT` while the file takes it,
/// and gives the buffer back.
fn write_pieces(
    file: &fs_err::File,
    mut direct: bool,
    pieces: Receiver<Piece>,
    spent: &std::sync::mpsc::Sender<Piece>,
) -> io::Result<()> {
    let mut behind = 0;
    for piece in pieces {
        let bytes = piece.bytes();
        let mut done = 0;
        if direct {
            // Whole aligned blocks only; a last piece's partial block goes buffered.
            let aligned = bytes.len() / ALIGN * ALIGN;
            match file.write_all_at(&bytes[..aligned], piece.at) {
                Ok(()) => done = aligned,
                // Alignment refused (the buffer's, or a file system's own rules): the rest of
                // the file is written through the page cache.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
                Err(e) => return Err(e),
            }
            if done < bytes.len() {
                let flags = rustix::fs::fcntl_getfl(file.file())?;
                rustix::fs::fcntl_setfl(file.file(), flags - rustix::fs::OFlags::DIRECT)?;
                direct = false;
            }
        }
        if done < bytes.len() {
            file.write_all_at(&bytes[done..], piece.at + done as u64)?;
            let end = piece.at + bytes.len() as u64;
            if let Some(len) =
                std::num::NonZeroU64::new(end - behind).filter(|len| len.get() >= WRITE_BEHIND)
            {
                // Starts the window's writeback without waiting for it (advice: its errors
                // are ignored, and the caller's sync reports any real one).
                let _ = rustix::fs::fadvise(file, behind, Some(len), rustix::fs::Advice::DontNeed);
                behind = end;
            }
        }
        // The writer may be gone (it takes spares only while writing).
        let _ = spent.send(piece);
    }
    Ok(())
}

/// A buffer of [`PIECE`] bytes starting at an [`ALIGN`]ed address, and where in the file its
/// bytes go.
struct Piece {
    buf: Vec<u8>,
    /// Where the aligned part of `buf` starts.
    start: usize,
    /// Bytes filled.
    len: usize,
    /// Their offset in the file.
    at: u64,
}

impl Piece {
    fn new(at: u64) -> Self {
        let buf = vec![0; PIECE + ALIGN];
        // `align_offset` may decline (`usize::MAX`): the piece is then unaligned, and the
        // thread's first write falls back to buffered ones.
        let start = match buf.as_ptr().align_offset(ALIGN) {
            offset if offset < ALIGN => offset,
            _ => 0,
        };
        Piece {
            buf,
            start,
            len: 0,
            at,
        }
    }

    fn reset(&mut self, at: u64) {
        self.len = 0;
        self.at = at;
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn is_full(&self) -> bool {
        self.len == PIECE
    }

    /// Copies as much of `buf` as fits; how much.
    fn take(&mut self, buf: &[u8]) -> usize {
        let from = self.start + self.len;
        let n = (PIECE - self.len).min(buf.len());
        self.buf[from..from + n].copy_from_slice(&buf[..n]);
        self.len += n;
        n
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::PathBuf;

    use super::*;
    use crate::diff::first_difference;

    /// No two 4 KiB pages alike, so a page dropped, moved or written twice shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i >> 12) as u8)
            .collect()
    }

    /// Writes `bytes` through a [`DirectWriter`] in pieces of awkward sizes; the file, and
    /// whether it was opened with `O_DIRECT` and still has it.
    fn write_awkwardly(bytes: &[u8]) -> (tempfile::TempDir, PathBuf, bool, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let mut out = DirectWriter::create(&path).unwrap();
        let opened_direct = rustix::fs::fcntl_getfl(out.file.file())
            .unwrap()
            .contains(rustix::fs::OFlags::DIRECT);
        let mut at = 0;
        for piece in [1usize, 4095, 131_072, 777_777, 3 << 20].iter().cycle() {
            let end = (at + piece).min(bytes.len());
            out.write_all(&bytes[at..end]).unwrap();
            at = end;
            if at == bytes.len() {
                break;
            }
        }
        out.flush().unwrap();
        assert_eq!(out.written(), bytes.len() as u64);
        let (file, written) = out.finish().unwrap();
        assert_eq!(written, bytes.len() as u64);
        file.sync_all().unwrap();
        let still_direct = rustix::fs::fcntl_getfl(file.file())
            .unwrap()
            .contains(rustix::fs::OFlags::DIRECT);
        (dir, path, opened_direct, still_direct)
    }

    /// Whole blocks: every byte lands, and where the file system took `O_DIRECT` (ext4, as
    /// on the development and CI machines) no write needed the page cache.
    #[test]
    fn whole_blocks_land_byte_for_byte_past_the_page_cache() {
        let bytes = pattern(3 * PIECE + 5 * ALIGN);
        let (_dir, path, opened_direct, still_direct) = write_awkwardly(&bytes);
        let back = fs_err::read(&path).unwrap();
        assert_eq!(back.len(), bytes.len());
        assert_eq!(first_difference(&back, &bytes), None);
        assert_eq!(still_direct, opened_direct, "an aligned write was refused");
    }

    /// A length that ends inside a block: its last partial block goes through the page cache.
    #[test]
    fn a_partial_last_block_lands_too() {
        for len in [1, ALIGN - 1, ALIGN + 1, PIECE + 12_345, 2 * PIECE - 1] {
            let bytes = pattern(len);
            let (_dir, path, _, still_direct) = write_awkwardly(&bytes);
            let back = fs_err::read(&path).unwrap();
            assert_eq!(back.len(), len, "{len} bytes");
            assert_eq!(first_difference(&back, &bytes), None, "{len} bytes");
            assert!(
                !still_direct,
                "{len} bytes: the partial block needs buffered writes"
            );
        }
    }

    /// A piece `O_DIRECT` refuses (its buffer one byte off alignment) is written through the
    /// page cache, and so is everything after it, byte for byte.
    #[test]
    fn a_refused_piece_falls_back_to_buffered_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let file = fs_err::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(&path)
            .unwrap();
        let bytes = pattern(3 * PIECE);
        let (to, pieces) = std::sync::mpsc::sync_channel(3);
        let (spent, _spares) = std::sync::mpsc::channel();
        for (i, misaligned) in [false, true, false].into_iter().enumerate() {
            let mut piece = Piece::new((i * PIECE) as u64);
            if misaligned {
                piece.start = (piece.start + 1) % ALIGN;
            }
            assert_eq!(piece.take(&bytes[i * PIECE..(i + 1) * PIECE]), PIECE);
            to.send(piece).unwrap();
        }
        drop(to);
        write_pieces(&file, true, pieces, &spent).unwrap();
        file.sync_all().unwrap();
        assert!(!rustix::fs::fcntl_getfl(file.file())
            .unwrap()
            .contains(rustix::fs::OFlags::DIRECT));
        let back = fs_err::read(&path).unwrap();
        assert_eq!(back.len(), bytes.len());
        assert_eq!(first_difference(&back, &bytes), None);
    }

    /// A write the disk refuses (`/dev/full`: no space) fails the writer, naming the file,
    /// whether the thread's error comes with a later write or with `finish`.
    #[test]
    fn a_failed_write_is_an_error_that_names_the_file() {
        let path = Path::new("/dev/full");
        let mut out = DirectWriter::create(path).unwrap();
        let bytes = pattern(PIECE);
        let mut failed = None;
        for _ in 0..4 * QUEUE {
            if let Err(e) = out.write_all(&bytes) {
                failed = Some(e);
                break;
            }
        }
        let e = match failed {
            Some(e) => e,
            None => out.finish().map(|_| ()).unwrap_err(),
        };
        let text = format!("{e}");
        assert!(text.contains("/dev/full"), "{text}");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e:?}");
    }
}

//! Stages 3 and 4, one function for the root and every data disk: a tree → an EROFS image
//! with its dm-verity hash area appended, hashed as it is written.

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use measurements::Sha256Digest;
use sha2::{Digest, Sha256};

use crate::content::ContentStore;
use crate::progress::Progress;
use crate::seed::Seed;
use crate::tree::Tree;
use crate::{erofs, verity};

/// Stage 3+4 output: an EROFS image written and its verity tree appended (the root image,
/// or a data disk).
#[derive(Debug)]
pub struct VerityImage {
    /// The image file (in the staging directory).
    pub path: PathBuf,
    /// The file-system UUID.
    pub fs_uuid: [u8; 16],
    /// File-system bytes; the verity area starts here.
    pub data_size: u64,
    /// The verity parameters used.
    pub params: verity::Params,
    /// The computed tree.
    pub tree: verity::HashTree,
    /// sha256 and size of the whole image file.
    pub sha256: Sha256Digest,
    /// Total size.
    pub size: u64,
}

/// Writes `tree` as an EROFS image at `path` and appends its dm-verity hash area (salted with
/// `salt`); the file-system UUID and verity UUID derive from `seed`, every timestamp is
/// `epoch`.
#[allow(clippy::too_many_arguments)]
pub fn write_verity_image(
    epoch: u64,
    seed: &Seed,
    salt: Vec<u8>,
    tree: &Tree,
    store: &ContentStore,
    path: &Path,
    what: &str,
    progress: &dyn Progress,
) -> anyhow::Result<VerityImage> {
    let fs_uuid = seed.uuid("erofs");

    progress.message(&format!("writing the EROFS {what}"));
    let file = fs_err::File::create(path)?;
    let mut hashing = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let info = erofs::write(
        tree,
        &erofs::Options {
            epoch,
            uuid: fs_uuid,
        },
        store,
        &mut hashing,
    )
    .context("writing the EROFS image")?;
    hashing.flush()?;

    progress.message(&format!(
        "computing the dm-verity tree over {} bytes",
        info.size
    ));
    let params = verity::Params {
        salt,
        uuid: seed.uuid("verity"),
        data_block_size: 4096,
        hash_block_size: 4096,
    };
    let mut data = fs_err::File::open(path)?;
    let vtree = {
        let mut r = io::BufReader::with_capacity(1 << 20, &mut data).take(info.size);
        verity::build(&mut r, info.size, &params).context("computing the dm-verity tree")?
    };
    hashing.write_all(&vtree.area)?;
    let (mut buffered, sha256, size) = hashing.finish();
    buffered.flush()?;
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    // Guard: the file on disk is exactly what was hashed.
    let mut check = fs_err::File::open(path)?;
    let on_disk = check.seek(SeekFrom::End(0))?;
    anyhow::ensure!(
        on_disk == size,
        "{} is {on_disk} bytes on disk, {size} were written",
        path.display()
    );
    Ok(VerityImage {
        path: path.to_owned(),
        fs_uuid,
        data_size: info.size,
        params,
        tree: vtree,
        sha256,
        size,
    })
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, Sha256Digest, u64) {
        (
            self.inner,
            Sha256Digest(self.hasher.finalize().into()),
            self.size,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

//! Stages 3 and 4, one function for the root and every data disk: a tree → an EROFS image
//! with its dm-verity hash area appended, hashed as it is written (never read back).

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use measurements::Sha256Digest;
use sha2::Digest;

use crate::content::ContentStore;
use crate::output::WriteBehind;
use crate::progress::{Meter, Progress};
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

    progress.message(&format!("writing the EROFS {what} and its dm-verity tree"));
    let params = verity::Params {
        salt,
        uuid: seed.uuid("verity"),
        data_block_size: 4096,
        hash_block_size: 4096,
    };
    let planned = erofs::plan(
        tree,
        &erofs::Options {
            epoch,
            uuid: fs_uuid,
        },
    )
    .context("laying out the EROFS image")?;
    let file = fs_err::File::create(path)?;
    // Its writeback starts as it is written, so the sync before the rename has little left.
    let mut out = WriteBehind::new(&file);
    // One pass: the EROFS writer's bytes go to the file and, on the other core, into the
    // dm-verity level 0 and the file's sha256; the image is never read back.
    let (info, teed) = verity::tee(
        &mut out,
        verity::BlockSize::DEFAULT,
        &params.salt,
        |w| -> anyhow::Result<erofs::ImageInfo> {
            let mut metered = Meter::new(progress, format!("EROFS {what}"), planned.size()).wrap(w);
            let info = planned
                .emit(store, &mut metered)
                .context("writing the EROFS image")?;
            metered.finish();
            Ok(info)
        },
    )?;
    anyhow::ensure!(
        teed.size == info.size,
        "the EROFS writer wrote {} bytes, its layout says {}",
        teed.size,
        info.size
    );
    let vtree = verity::from_level0(&params, info.size, &teed.level0)
        .context("computing the dm-verity tree")?;
    drop(teed.level0);
    for piece in vtree.area.chunks(verity::PIECE_BYTES) {
        out.write_all(piece)?;
    }
    let mut hasher = teed.sha256;
    hasher.update(&vtree.area);
    let sha256 = Sha256Digest(hasher.finalize().into());
    let size = info.size + vtree.area.len() as u64;
    anyhow::ensure!(
        out.written() == size,
        "{} bytes were written to {}, {size} were hashed",
        out.written(),
        path.display()
    );
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

//! Stages 3 and 4, one function for the root and every data disk: a tree → an EROFS image
//! with its dm-verity hash area appended, hashed as it is written (never read back).
//!
//! Memory does not grow with the image: the hash area is built as the level-0 digests arrive
//! ([`verity::TreeWriter`]) into an unlinked file beside the image, then appended to it (read
//! back from the page cache: 1/127 of the data with 4 KiB blocks).
//!
//! Adopted contents (a data disk's pinned weights, [`ContentStore::adopt`]) are checked
//! against their pins here, from the image's bytes: the image's sha256 and each pin's are
//! computed in one pass over them ([`verity::Also`]).

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use measurements::Sha256Digest;

use crate::content::ContentStore;
use crate::direct::DirectWriter;
use crate::pin::PinError;
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
    /// The computed tree's root and geometry.
    pub tree: verity::TreeRoot,
    /// sha256 and size of the whole image file.
    pub sha256: Sha256Digest,
    /// Total size.
    pub size: u64,
}

/// Writes `tree` as an EROFS image at `path` and appends its dm-verity hash area (salted with
/// `salt`); the file-system UUID and verity UUID derive from `seed`, every timestamp is
/// `epoch`. The image is `store`'s last reader: each content is released once it is in the
/// image ([`crate::content::ContentSource::release`]), and the store is removed once the
/// file system is written.
#[allow(clippy::too_many_arguments)]
pub fn write_verity_image(
    epoch: u64,
    seed: &Seed,
    salt: Vec<u8>,
    tree: &Tree,
    store: ContentStore,
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
    // The adopted contents' bytes in the image: hashed as they are written, checked after.
    let mut pinned = Vec::new();
    for extent in planned.file_extents() {
        if let Some(file) = store.adopted(&extent.content)? {
            pinned.push((extent, file));
        }
    }
    let also: Vec<verity::Also> = pinned
        .iter()
        .map(|(e, _)| verity::Also {
            first: e.data.clone(),
            then: e.tail.clone(),
        })
        .collect();
    // Past the page cache, on a thread of its own: the image is never read back.
    let mut out = DirectWriter::create(path)?;
    // The hash area, as it is built: unlinked, so nothing of it outlives the build.
    let dir = path.parent().unwrap_or(Path::new("."));
    let area = fs_err::File::from_parts(
        tempfile::tempfile_in(dir).with_context(|| {
            format!("creating the {what}'s dm-verity area in {}", dir.display())
        })?,
        dir.join(format!("(the {what}'s dm-verity area, unlinked)")),
    );
    let mut tree = verity::TreeWriter::new(&params, planned.size(), area)
        .context("laying out the dm-verity tree")?;
    let mut level0 = |digests: &[u8]| tree.push(digests).map_err(std::io::Error::other);
    // One pass: the EROFS writer's bytes go to the file and, on the other core, into the
    // dm-verity tree and the file's sha256.
    let (info, teed) = verity::tee(
        &mut out,
        verity::BlockSize::DEFAULT,
        &params.salt,
        &also,
        &mut level0,
        |w| -> anyhow::Result<erofs::ImageInfo> {
            let mut metered = Meter::new(progress, format!("EROFS {what}"), planned.size()).wrap(w);
            let info = planned
                .emit(&store, &mut metered)
                .context("writing the EROFS image")?;
            metered.finish();
            Ok(info)
        },
    )?;
    // Its pages are freed now, before the verity area and the sync, not after the build.
    store.remove()?;
    anyhow::ensure!(
        teed.size == info.size,
        "the EROFS writer wrote {} bytes, its layout says {}",
        teed.size,
        info.size
    );
    for ((_, file), found) in pinned.iter().zip(&teed.also) {
        if *found != file.sha256.0 {
            return Err(PinError::Mismatch {
                field: file.field.clone(),
                source_path: file.source.clone(),
                expected: file.sha256,
                found: Sha256Digest(*found),
            })
            .with_context(|| format!("{}: the bytes written to the {what}", file.path.display()));
        }
    }
    let (vtree, area) = tree.finish().context("computing the dm-verity tree")?;
    // The area after the data, read back piece by piece into the image and its sha256.
    let area_size = vtree.layout.area_size();
    let mut hasher = teed.sha256;
    let mut piece = vec![0u8; verity::PIECE_BYTES];
    let mut at = 0;
    while at < area_size {
        let n = (area_size - at).min(piece.len() as u64) as usize;
        std::os::unix::fs::FileExt::read_exact_at(area.file(), &mut piece[..n], at)
            .with_context(|| format!("reading back the {what}'s dm-verity area at byte {at}"))?;
        out.write_all(&piece[..n])?;
        hasher.update(&piece[..n]);
        at += n as u64;
    }
    drop(area);
    let sha256 = Sha256Digest(hasher.finalize());
    let size = info.size + area_size;
    let (file, written) = out.finish()?;
    anyhow::ensure!(
        written == size,
        "{written} bytes were written to {}, {size} were hashed",
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

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::pin::PinnedFile;
    use crate::tree::{Leaf, LeafKind, Metadata};

    /// A data disk holding one adopted file of `len` bytes pinned to `pin`'s bytes, written
    /// from `on_disk`'s: the image, or the build's error.
    fn disk_with(pin: &[u8], on_disk: &[u8]) -> (tempfile::TempDir, anyhow::Result<VerityImage>) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let weights = dir.path().join("weights.bin");
        fs_err::write(&weights, on_disk).unwrap();
        let pinned = PinnedFile {
            source: "weights.bin".into(),
            path: weights,
            sha256: Sha256Digest(Sha256::digest(pin).into()),
            size: pin.len() as u64,
            field: "disks[0].files[0]".into(),
        };
        let content = store.adopt(&pinned).unwrap();
        let mut tree = Tree::new();
        let leaf = Leaf {
            meta: Metadata {
                mode: 0o644,
                ..Default::default()
            },
            kind: LeafKind::Regular(content),
        };
        crate::tree::apply::insert_file(&mut tree, b"/model.safetensors", leaf).unwrap();
        let built = write_verity_image(
            0,
            &Seed::new(0, &[]),
            vec![7; 32],
            &tree,
            store,
            &dir.path().join("disk.img"),
            "data disk test",
            &|_: &str| {},
        );
        (dir, built)
    }

    /// Deterministic bytes: several tee chunks, and a tail that is packed inline.
    fn weights(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 11) as u8)
            .collect()
    }

    #[test]
    fn adopted_weights_are_checked_against_their_pin_from_the_image_s_bytes() {
        for len in [
            3 * verity::PIECE_BYTES + 4096 + 1234,
            2 * verity::PIECE_BYTES,
            777,
        ] {
            let good = weights(len, 1);
            let (dir, built) = disk_with(&good, &good);
            let image = built.unwrap();
            // The record's digest is the file's (sha2 over the bytes on disk), and the weights
            // are in it whole.
            let bytes = fs_err::read(dir.path().join("disk.img")).unwrap();
            assert_eq!(
                image.sha256.0,
                <[u8; 32]>::from(Sha256::digest(&bytes)),
                "{len}"
            );
            let img = erofs::dump::Image::open(&bytes[..image.data_size as usize]).unwrap();
            let root = img.inode(img.superblock().root_nid.into()).unwrap();
            let entry = img.dir_entries(&root, "/").unwrap()[2].nid;
            assert_eq!(img.data(&img.inode(entry).unwrap()).unwrap(), good, "{len}");

            // Other bytes of the same size: the pin error, naming the field and both digests.
            let mut bad = good.clone();
            bad[len / 2] ^= 1;
            let (_dir, built) = disk_with(&good, &bad);
            let err = built.unwrap_err();
            let pin = err.chain().find_map(|e| e.downcast_ref::<PinError>());
            let text = format!("{err:#}");
            assert!(
                matches!(pin, Some(PinError::Mismatch { .. })),
                "{len}: {text}"
            );
            for needle in [
                "disks[0].files[0]".to_owned(),
                hex::encode(Sha256::digest(&good)),
                hex::encode(Sha256::digest(&bad)),
            ] {
                assert!(text.contains(&needle), "{len}: {needle} in {text}");
            }
        }
    }
}

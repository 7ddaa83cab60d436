//! Placing the builder's own files in a tree (stage 2 for the root, stage 4b for data disks):
//! a file streamed into the content store and inserted at its path, and the rule that two
//! manifest entries never place one path.

use std::io::Read;

use anyhow::Context as _;
use measurements::Sha256Digest;

use crate::content::ContentStore;
use crate::tree::{self, Leaf, LeafKind, Metadata, Tree};

/// Two manifest entries place the same path (layers may replace each other's files, and
/// manifest entries may replace a layer's; two manifest entries for one path is a mistake,
/// and the record would list a digest that is not in the image).
#[derive(Debug, thiserror::Error)]
#[error("{by}: {path} is already placed in {place} by {first}; give each entry its own path")]
pub struct PathTwice {
    /// The later entry (manifest field).
    pub by: String,
    /// The path.
    pub path: String,
    /// The root file system or a data disk.
    pub place: String,
    /// The earlier entry.
    pub first: String,
}

/// Refuses a path placed by two `(path, manifest field)` entries.
pub(crate) fn one_input_per_path<'a>(
    entries: impl Iterator<Item = (&'a str, String)>,
    place: &str,
) -> Result<(), PathTwice> {
    let mut placed: std::collections::BTreeMap<String, String> = Default::default();
    for (path, by) in entries {
        let key: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if let Some(first) = placed.insert(key.join("/"), by.clone()) {
            return Err(PathTwice {
                by,
                path: path.to_owned(),
                place: place.to_owned(),
                first,
            });
        }
    }
    Ok(())
}

/// A regular file the builder adds to the tree after the layers.
pub(crate) struct NewFile<'a> {
    pub(crate) path: &'a str,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Streams `reader` into the store and places it at `file.path`. With `expected`, the bytes
/// must still have the digest they were pinned or built with.
pub(crate) fn place_file(
    tree: &mut Tree,
    store: &ContentStore,
    reader: &mut dyn Read,
    size: u64,
    expected: Option<&Sha256Digest>,
    file: &NewFile<'_>,
) -> anyhow::Result<()> {
    let (content, sha256) = store.put(reader, size).context("reading")?;
    if let Some(expected) = expected {
        anyhow::ensure!(
            sha256 == expected.0,
            "changed while the build was reading it; rebuild"
        );
    }
    let leaf = Leaf {
        meta: Metadata {
            mode: file.mode,
            uid: file.uid,
            gid: file.gid,
            xattrs: Default::default(),
        },
        kind: LeafKind::Regular(content),
    };
    tree::apply::insert_file(tree, file.path.as_bytes(), leaf)
        .with_context(|| format!("placing {}", file.path))?;
    Ok(())
}

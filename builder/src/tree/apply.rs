//! Applying one layer's tar stream onto a [`Tree`], with OCI layer semantics.
//!
//! The rules, in the order an entry meets them:
//!
//! 1. **Path.** A leading `/` or `./` and empty or `.` components are dropped; `..` is applied
//!    lexically and refused if it climbs above the root ([`ApplyError::PathEscapesRoot`]).
//! 2. **Parents.** Every component but the last is resolved inside the image root, as container
//!    runtimes do: a symlink (from this or an earlier layer) is followed, an absolute target
//!    restarting at the image root and a relative one at the link's directory; a target whose
//!    `..` climbs above the root is refused ([`ApplyError::SymlinkEscapesRoot`]). Missing
//!    directories are created with mode 0755, owned by 0:0. The last component is never
//!    followed: an entry replaces whatever is there, and a symlink's own target is kept verbatim.
//! 3. **Whiteouts.** `.wh.NAME` removes NAME, and `.wh..wh..opq` removes every entry of its
//!    directory, *that came from lower layers*: entries this same layer writes (before or after
//!    the marker) stay, and so do directories holding them. Whiteout files never appear.
//! 4. **Replacement.** A directory over a directory keeps the children and takes the new
//!    metadata; anything else replaces what was there (a whole subtree, if it was a directory),
//!    as containerd and umoci do.
//! 5. **Duplicates.** The same path twice in one layer is allowed only if both entries are
//!    identical; otherwise it is [`ApplyError::Duplicate`].
//!
//! Hard links name the existing leaf (the link target's last component is not followed, as
//! `link(2)` does not follow it); a missing or directory target is refused. Owners are the
//! numeric ids of the header (PAX `uid`/`gid` win), modes keep only the `0o7777` bits, and
//! extended attributes come from PAX `SCHILY.xattr.*` records. Timestamps are dropped.
//!
//! A layer is applied in two steps: [`parse_layer`] reads the tar stream, checks each entry's
//! own fields and spools its file contents (it needs no tree, so several layers can be parsed
//! at once), and [`apply_parsed`] then applies the entries to the tree in order (every rule
//! above). [`apply_layer`] does both. The first error is the one reported, as if each entry
//! were applied as it was read: the entries parsed before a parsing error are applied first.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Read};

use super::{Directory, Entry, Leaf, LeafId, LeafKind, Metadata, Tree};
use crate::content::{Content, ContentSource as _, ContentStore, Spooler};
use crate::manifest::NAME_MAX;

/// How many symlinks one path may traverse before it is taken for a loop (Linux's limit).
const MAX_SYMLINK_FOLLOWS: u32 = 40;

/// A path as its components (single names, no `/`).
type Components = Vec<Vec<u8>>;

/// The layer name [`insert_file`] uses in its errors.
pub const EXTRA_FILES: &str = "manifest extra files";

/// Why a layer cannot be applied. Every variant names the layer and the entry's path as
/// written in the tar (`path`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The tar stream itself is corrupt, truncated or not tar (the error may carry a
    /// decompression error from [`crate::inputs::layer`]).
    #[error("layer {layer}: cannot read the tar stream {after}: {source}; the layer is corrupt, rebuild it")]
    Tar {
        /// The layer.
        layer: String,
        /// Where: `at the start` or `after entry PATH (header at byte N)`.
        after: String,
        /// The tar or decompression error.
        source: io::Error,
    },
    /// A header field of an entry cannot be parsed.
    #[error("layer {layer}: entry {path:?} (header at byte {offset}): bad {field}: {reason}; rebuild the layer")]
    Header {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
        /// Offset of its header in the decompressed stream.
        offset: u64,
        /// The field (`mode`, `uid`, `device major`, ...).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An entry's data cannot be read or stored (truncated layer, corrupt compression, disk).
    #[error(
        "layer {layer}: entry {path:?} (header at byte {offset}): cannot read its data: {source}"
    )]
    Content {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
        /// Offset of its header in the decompressed stream.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The layer's files cannot be written to the build's content store.
    #[error("layer {layer}: cannot write its files to the build's content store: {source}")]
    Store {
        /// The layer.
        layer: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A path's `..` components climb above the image root.
    #[error("layer {layer}: entry {path:?} climbs above the image root with `..`; rebuild the layer without it")]
    PathEscapesRoot {
        /// The layer.
        layer: String,
        /// The entry (or hard-link target) path.
        path: String,
    },
    /// Resolving a path through a symlink would climb above the image root.
    #[error("layer {layer}: entry {path:?} goes through symlink {symlink:?}, whose target climbs above the image root; rebuild the layer so the path does not go through that symlink")]
    SymlinkEscapesRoot {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
        /// The symlink whose target climbs out (its path in the image).
        symlink: String,
    },
    /// Resolving a path follows more than 40 symlinks.
    #[error("layer {layer}: entry {path:?} goes through more than {MAX_SYMLINK_FOLLOWS} symlinks (a loop?); rebuild the layer")]
    SymlinkLoop {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
    },
    /// A parent component of a path is a file, not a directory.
    #[error("layer {layer}: entry {path:?} needs {component:?} to be a directory, but it is a {kind}; rebuild the layer")]
    NotADirectory {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
        /// The offending component (resolved path in the image).
        component: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// A hard link's target does not exist or is a directory.
    #[error("layer {layer}: hard link {path:?} points to {target:?}, which {problem}; rebuild the layer so the target comes first")]
    HardlinkTarget {
        /// The layer.
        layer: String,
        /// The link.
        path: String,
        /// The link target as written.
        target: String,
        /// `does not exist` or `is a directory`.
        problem: &'static str,
    },
    /// The same path appears twice in one layer with different contents.
    #[error("layer {layer}: {path:?} appears more than once with different type, metadata or contents; rebuild the layer with one entry per path")]
    Duplicate {
        /// The layer.
        layer: String,
        /// The path.
        path: String,
    },
    /// A tar entry type that cannot be part of a file system image.
    #[error("layer {layer}: entry {path:?} has unsupported tar type {type_flag:?}; rebuild the layer with plain files, directories, links and devices")]
    EntryType {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
        /// The tar type flag.
        type_flag: char,
    },
    /// A file in GNU tar's PAX sparse format (`GNU.sparse.*` records), which this reader
    /// cannot expand; the old GNU `S` sparse type is supported.
    #[error("layer {layer}: entry {path:?} uses GNU tar's PAX sparse format; rebuild the layer without --sparse")]
    PaxSparse {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
    },
    /// A whiteout name that is not `.wh.NAME` or `.wh..wh..opq`.
    #[error("layer {layer}: whiteout {path:?} is not a valid `.wh.NAME` or `.wh..wh..opq` entry; rebuild the layer")]
    Whiteout {
        /// The layer.
        layer: String,
        /// The whiteout entry.
        path: String,
    },
    /// A non-directory entry for the image root (`/` or `.`).
    #[error("layer {layer}: entry {path:?} names the image root but is not a directory")]
    RootNotDirectory {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
    },
    /// A symlink with an empty target (Linux cannot create one).
    #[error("layer {layer}: symlink {path:?} has an empty target; rebuild the layer")]
    EmptySymlink {
        /// The layer.
        layer: String,
        /// The symlink.
        path: String,
    },
    /// A path component is longer than EROFS (and Linux) can hold.
    #[error("layer {layer}: entry {path:?} has a {len}-byte name; EROFS names hold at most {NAME_MAX} bytes, rebuild the layer with shorter names")]
    NameTooLong {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
        /// The name's length in bytes.
        len: usize,
    },
    /// A symlink target with a NUL byte (only a PAX `linkpath` record can carry one).
    #[error("layer {layer}: symlink {path:?} has a NUL byte in its target; rebuild the layer")]
    NulInLinkTarget {
        /// The layer.
        layer: String,
        /// The symlink.
        path: String,
    },
    /// A path component contains a NUL byte.
    #[error("layer {layer}: entry {path:?} contains a NUL byte; rebuild the layer")]
    NulInName {
        /// The layer.
        layer: String,
        /// The entry.
        path: String,
    },
}

/// Applies the tar stream `tar` (already decompressed) onto `tree`, storing regular-file
/// contents in `store`. `layer` names the layer in errors (for example its digest).
pub fn apply_layer(
    tree: &mut Tree,
    tar: &mut dyn Read,
    layer: &str,
    store: &ContentStore,
) -> Result<(), ApplyError> {
    let mut spooler = store.spooler();
    let parsed = parse_layer(tar, layer, &mut spooler);
    spooler.finish().map_err(|source| ApplyError::Store {
        layer: layer.to_owned(),
        source,
    })?;
    apply_parsed(tree, parsed, layer, store)
}

/// One tar entry, read and checked on its own, its file content spooled: what
/// [`apply_parsed`] applies.
#[derive(Debug)]
pub struct Parsed {
    /// The path as written in the tar, for messages.
    path: String,
    /// Its header's offset in the decompressed stream.
    offset: u64,
    /// The normalised path.
    comps: Components,
    op: Op,
}

/// What an entry does to the tree.
#[derive(Debug)]
enum Op {
    /// `.wh.NAME` or `.wh..wh..opq` (this name) in the directory the path names.
    Whiteout(Vec<u8>),
    /// A hard link to this target (as written).
    Link(Vec<u8>),
    Dir(Metadata),
    Leaf(Leaf),
}

/// A layer that could not be parsed to its end: the entries before the failure, which are
/// applied before the error is reported (an error one of them causes comes first).
#[derive(Debug)]
pub struct ParseFailed {
    /// The entries read before the failure.
    pub before: Vec<Parsed>,
    /// Why reading stopped.
    pub error: ApplyError,
}

impl std::fmt::Display for ParseFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ParseFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// Reads the tar stream `tar` (already decompressed): checks each entry's own fields (path,
/// header, type, link target) and spools regular-file contents through `spooler`, without
/// the tree. `layer` names the layer in errors.
pub fn parse_layer(
    tar: &mut dyn Read,
    layer: &str,
    spooler: &mut Spooler<'_>,
) -> Result<Vec<Parsed>, ParseFailed> {
    let mut parsed = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let mut after = String::from("at the start");
    let tar_error = |after: &str, source| ApplyError::Tar {
        layer: layer.to_owned(),
        after: after.to_owned(),
        source,
    };
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(source) => {
            return Err(ParseFailed {
                before: parsed,
                error: tar_error(&after, source),
            })
        }
    };
    for entry in entries {
        let result = entry
            .map_err(|source| tar_error(&after, source))
            .and_then(|mut entry| {
                let raw_path = entry.path_bytes().into_owned();
                let ctx = Ctx {
                    layer,
                    path: String::from_utf8_lossy(&raw_path).into_owned(),
                    offset: entry.raw_header_position(),
                };
                let op = parse_entry(&mut entry, &raw_path, &ctx, spooler)?;
                Ok((ctx.path, ctx.offset, op))
            });
        match result {
            Ok((path, offset, op)) => {
                after = format!("after entry {path:?} (header at byte {offset})");
                if let Some((comps, op)) = op {
                    parsed.push(Parsed {
                        path,
                        offset,
                        comps,
                        op,
                    });
                }
            }
            Err(error) => {
                return Err(ParseFailed {
                    before: parsed,
                    error,
                })
            }
        }
    }
    Ok(parsed)
}

/// Applies a layer's entries, as [`parse_layer`] read them, onto `tree` in order (contents
/// are compared in `store` where a path repeats); a parsing failure is reported after the
/// entries before it are applied. `layer` names the layer in errors.
pub fn apply_parsed(
    tree: &mut Tree,
    parsed: Result<Vec<Parsed>, ParseFailed>,
    layer: &str,
    store: &ContentStore,
) -> Result<(), ApplyError> {
    let (entries, failed) = match parsed {
        Ok(entries) => (entries, None),
        Err(ParseFailed { before, error }) => (before, Some(error)),
    };
    let mut state = LayerState::default();
    for p in entries {
        let ctx = Ctx {
            layer,
            path: p.path,
            offset: p.offset,
        };
        let comps = p.comps;
        match p.op {
            Op::Whiteout(name) => whiteout(tree, &comps, &name, &ctx, &state)?,
            Op::Link(target) => {
                let id = link_target(tree, &target, &ctx)?;
                put_leaf(tree, &comps, NewLeaf::Link(id), &ctx, None, &mut state)?;
            }
            Op::Dir(meta) => put_dir(tree, &comps, meta, &ctx, &mut state)?,
            Op::Leaf(leaf) => {
                put_leaf(
                    tree,
                    &comps,
                    NewLeaf::Leaf(leaf),
                    &ctx,
                    Some(store),
                    &mut state,
                )?;
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Adds `leaf` at `path` (for the manifest's extra files), with the same path resolution,
/// parent creation, replacement rules and errors as a layer entry. Returns the new leaf's id.
pub fn insert_file(tree: &mut Tree, path: &[u8], leaf: Leaf) -> Result<LeafId, ApplyError> {
    let ctx = Ctx {
        layer: EXTRA_FILES,
        path: String::from_utf8_lossy(path).into_owned(),
        offset: 0,
    };
    let comps = normalise(path, &ctx)?;
    put_leaf(
        tree,
        &comps,
        NewLeaf::Leaf(leaf),
        &ctx,
        None,
        &mut LayerState::default(),
    )
}

/// Makes sure `path` is a directory (for a data disk's mount point): missing components are
/// created with mode 0755 owned by 0:0, existing directories are kept as they are, and
/// symlinks are resolved inside the tree as for any entry.
pub fn ensure_directory(tree: &mut Tree, path: &[u8], origin: &str) -> Result<(), ApplyError> {
    let ctx = Ctx {
        layer: origin,
        path: String::from_utf8_lossy(path).into_owned(),
        offset: 0,
    };
    let comps = normalise(path, &ctx)?;
    let resolved = resolve_dir(tree, &comps, &ctx)?;
    ensure_dir(&mut tree.root, &resolved, &ctx)?;
    Ok(())
}

/// Where an entry is, for messages.
struct Ctx<'a> {
    layer: &'a str,
    path: String,
    offset: u64,
}

impl Ctx<'_> {
    fn layer(&self) -> String {
        self.layer.to_owned()
    }
}

/// What the current layer has written so far: resolved paths (components joined by `/`,
/// the root is the empty path) of its explicit entries.
#[derive(Default)]
struct LayerState {
    written: BTreeSet<Vec<u8>>,
}

impl LayerState {
    /// Whether the layer wrote `key` itself or anything below it.
    fn touched(&self, key: &[u8]) -> bool {
        self.written.contains(key) || self.has_descendants(key)
    }

    fn has_descendants(&self, key: &[u8]) -> bool {
        let mut prefix = key.to_vec();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        self.written
            .range(prefix.clone()..)
            .find(|k| !k.is_empty())
            .is_some_and(|k| k.starts_with(&prefix))
    }
}

/// A leaf to place: a new inode, or another name for an existing one (a hard link).
enum NewLeaf {
    Leaf(Leaf),
    Link(LeafId),
}

/// Reads one entry: its normalised path and what it does, or `None` for an entry that does
/// nothing (a PAX global header). Everything that needs the tree is left to [`apply_parsed`].
fn parse_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw_path: &[u8],
    ctx: &Ctx<'_>,
    spooler: &mut Spooler<'_>,
) -> Result<Option<(Components, Op)>, ApplyError> {
    let comps = normalise(raw_path, ctx)?;
    let kind = entry.header().entry_type();
    if kind.is_pax_global_extensions() {
        return Ok(None);
    }
    if comps.last().is_some_and(|n| n.starts_with(b".wh.")) {
        let mut dir = comps;
        let name = dir.pop().unwrap_or_default();
        return Ok(Some((dir, Op::Whiteout(name))));
    }
    if kind.is_hard_link() {
        let target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        return Ok(Some((comps, Op::Link(target))));
    }
    let meta = entry_meta(entry, ctx)?;
    let leaf_kind = if kind.is_dir() {
        return Ok(Some((comps, Op::Dir(meta))));
    } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
        let size = entry.size();
        // Unhashed: the layer's pin covers these bytes.
        let content = spooler
            .spool(entry, size)
            .map_err(|source| ApplyError::Content {
                layer: ctx.layer(),
                path: ctx.path.clone(),
                offset: ctx.offset,
                source,
            })?;
        LeafKind::Regular(content)
    } else if kind.is_symlink() {
        let target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        if target.is_empty() {
            return Err(ApplyError::EmptySymlink {
                layer: ctx.layer(),
                path: ctx.path.clone(),
            });
        }
        if target.contains(&0) {
            return Err(ApplyError::NulInLinkTarget {
                layer: ctx.layer(),
                path: ctx.path.clone(),
            });
        }
        LeafKind::Symlink(target)
    } else if kind.is_character_special() {
        LeafKind::CharDevice(rdev(entry.header(), ctx)?)
    } else if kind.is_block_special() {
        LeafKind::BlockDevice(rdev(entry.header(), ctx)?)
    } else if kind.is_fifo() {
        LeafKind::Fifo
    } else {
        return Err(ApplyError::EntryType {
            layer: ctx.layer(),
            path: ctx.path.clone(),
            type_flag: char::from(kind.as_byte()),
        });
    };
    Ok(Some((
        comps,
        Op::Leaf(Leaf {
            meta,
            kind: leaf_kind,
        }),
    )))
}

/// Mode bits, owner and xattrs of an entry.
fn entry_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    ctx: &Ctx<'_>,
) -> Result<Metadata, ApplyError> {
    let bad = |field: &'static str, reason: String| ApplyError::Header {
        layer: ctx.layer(),
        path: ctx.path.clone(),
        offset: ctx.offset,
        field,
        reason,
    };
    let header = entry.header();
    let mode = header.mode().map_err(|e| bad("mode", e.to_string()))? & 0o7777;
    let mut uid = header.uid().map_err(|e| bad("uid", e.to_string()))?;
    let mut gid = header.gid().map_err(|e| bad("gid", e.to_string()))?;
    let mut xattrs = BTreeMap::new();
    let exts = entry
        .pax_extensions()
        .map_err(|e| bad("PAX header", e.to_string()))?;
    for ext in exts.into_iter().flatten() {
        let ext = ext.map_err(|e| bad("PAX header", e.to_string()))?;
        let key = ext.key_bytes();
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            xattrs.insert(name.to_vec(), ext.value_bytes().to_vec());
        } else if key.starts_with(b"GNU.sparse.") {
            return Err(ApplyError::PaxSparse {
                layer: ctx.layer(),
                path: ctx.path.clone(),
            });
        } else if key == b"uid" {
            uid = decimal(ext.value_bytes())
                .ok_or_else(|| bad("PAX uid", lossy(ext.value_bytes())))?;
        } else if key == b"gid" {
            gid = decimal(ext.value_bytes())
                .ok_or_else(|| bad("PAX gid", lossy(ext.value_bytes())))?;
        }
    }
    let uid =
        u32::try_from(uid).map_err(|_| bad("uid", format!("{uid} does not fit in 32 bits")))?;
    let gid =
        u32::try_from(gid).map_err(|_| bad("gid", format!("{gid} does not fit in 32 bits")))?;
    Ok(Metadata {
        mode,
        uid,
        gid,
        xattrs,
    })
}

fn decimal(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The Linux `makedev` encoding of the header's device numbers.
fn rdev(header: &tar::Header, ctx: &Ctx<'_>) -> Result<u64, ApplyError> {
    let bad = |field: &'static str, e: io::Error| ApplyError::Header {
        layer: ctx.layer(),
        path: ctx.path.clone(),
        offset: ctx.offset,
        field,
        reason: e.to_string(),
    };
    let major = u64::from(
        header
            .device_major()
            .map_err(|e| bad("device major", e))?
            .unwrap_or(0),
    );
    let minor = u64::from(
        header
            .device_minor()
            .map_err(|e| bad("device minor", e))?
            .unwrap_or(0),
    );
    Ok(
        (minor & 0xff)
            | ((major & 0xfff) << 8)
            | ((minor & !0xff) << 12)
            | ((major & !0xfff) << 32),
    )
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits a tar path into components: drops a leading `/`, empty and `.` components, and
/// applies `..` lexically, refusing one that climbs above the root.
fn normalise(raw: &[u8], ctx: &Ctx<'_>) -> Result<Vec<Vec<u8>>, ApplyError> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(ApplyError::PathEscapesRoot {
                        layer: ctx.layer(),
                        path: ctx.path.clone(),
                    });
                }
            }
            c if c.contains(&0) => {
                return Err(ApplyError::NulInName {
                    layer: ctx.layer(),
                    path: ctx.path.clone(),
                });
            }
            c if c.len() > NAME_MAX => {
                return Err(ApplyError::NameTooLong {
                    layer: ctx.layer(),
                    path: ctx.path.clone(),
                    len: c.len(),
                });
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

fn dir_at<'t>(root: &'t Directory, comps: &[Vec<u8>]) -> Option<&'t Directory> {
    let mut dir = root;
    for c in comps {
        match dir.entries.get(c) {
            Some(Entry::Directory(d)) => dir = d,
            _ => return None,
        }
    }
    Some(dir)
}

fn dir_at_mut<'t>(root: &'t mut Directory, comps: &[Vec<u8>]) -> Option<&'t mut Directory> {
    let mut dir = root;
    for c in comps {
        match dir.entries.get_mut(c) {
            Some(Entry::Directory(d)) => dir = d,
            _ => return None,
        }
    }
    Some(dir)
}

fn kind_name(kind: &LeafKind) -> &'static str {
    match kind {
        LeafKind::Regular(_) => "regular file",
        LeafKind::Symlink(_) => "symlink",
        LeafKind::CharDevice(_) => "character device",
        LeafKind::BlockDevice(_) => "block device",
        LeafKind::Fifo => "fifo",
        LeafKind::Socket => "socket",
    }
}

/// Resolves the directory path `comps` inside the image root, following symlinks, and returns
/// its canonical components (the trailing ones may not exist yet). Creates nothing.
fn resolve_dir(tree: &Tree, comps: &[Vec<u8>], ctx: &Ctx<'_>) -> Result<Vec<Vec<u8>>, ApplyError> {
    // Each pending component remembers the symlink it came from, to name it in errors.
    let mut pending: VecDeque<(Vec<u8>, Option<String>)> =
        comps.iter().map(|c| (c.clone(), None)).collect();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut follows = 0u32;
    while let Some((c, origin)) = pending.pop_front() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if out.pop().is_none() {
                    return Err(match origin {
                        Some(symlink) => ApplyError::SymlinkEscapesRoot {
                            layer: ctx.layer(),
                            path: ctx.path.clone(),
                            symlink,
                        },
                        None => ApplyError::PathEscapesRoot {
                            layer: ctx.layer(),
                            path: ctx.path.clone(),
                        },
                    });
                }
                continue;
            }
            _ => {}
        }
        let found = dir_at(&tree.root, &out).and_then(|d| d.entries.get(&c));
        let Some(Entry::Leaf(id)) = found else {
            // Missing, or a directory: descend (a missing one is created later).
            out.push(c);
            continue;
        };
        let mut here = out.clone();
        here.push(c);
        let here_str = format!("/{}", lossy(&join(&here)));
        match tree.leaves.get(id.0).map(|l| &l.kind) {
            Some(LeafKind::Symlink(target)) => {
                follows += 1;
                if follows > MAX_SYMLINK_FOLLOWS {
                    return Err(ApplyError::SymlinkLoop {
                        layer: ctx.layer(),
                        path: ctx.path.clone(),
                    });
                }
                if target.starts_with(b"/") {
                    out.clear();
                }
                for t in target.split(|&b| b == b'/').rev() {
                    pending.push_front((t.to_vec(), Some(here_str.clone())));
                }
            }
            other => {
                return Err(ApplyError::NotADirectory {
                    layer: ctx.layer(),
                    path: ctx.path.clone(),
                    component: here_str,
                    kind: other.map_or("dangling inode", kind_name),
                });
            }
        }
    }
    Ok(out)
}

/// The directory at canonical path `comps`, creating missing ones (0755, 0:0).
fn ensure_dir<'t>(
    root: &'t mut Directory,
    comps: &[Vec<u8>],
    ctx: &Ctx<'_>,
) -> Result<&'t mut Directory, ApplyError> {
    let mut dir = root;
    for (i, c) in comps.iter().enumerate() {
        let entry = dir.entries.entry(c.clone()).or_insert_with(|| {
            Entry::Directory(Directory {
                meta: Metadata {
                    mode: 0o755,
                    ..Metadata::default()
                },
                entries: BTreeMap::new(),
            })
        });
        match entry {
            Entry::Directory(d) => dir = d,
            // resolve_dir follows symlinks and refuses other leaves, so this is unreachable
            // for a resolved path; still an error, not a panic.
            Entry::Leaf(_) => {
                return Err(ApplyError::NotADirectory {
                    layer: ctx.layer(),
                    path: ctx.path.clone(),
                    component: format!("/{}", lossy(&join(comps.get(..=i).unwrap_or_default()))),
                    kind: "non-directory",
                })
            }
        }
    }
    Ok(dir)
}

/// Splits `comps` into resolved parent and last name; `None` for the root itself.
fn resolve_parent(
    tree: &Tree,
    comps: &[Vec<u8>],
    ctx: &Ctx<'_>,
) -> Result<Option<(Components, Vec<u8>)>, ApplyError> {
    let Some((name, parent)) = comps.split_last() else {
        return Ok(None);
    };
    Ok(Some((resolve_dir(tree, parent, ctx)?, name.clone())))
}

fn put_dir(
    tree: &mut Tree,
    comps: &[Vec<u8>],
    meta: Metadata,
    ctx: &Ctx<'_>,
    state: &mut LayerState,
) -> Result<(), ApplyError> {
    let Some((parent, name)) = resolve_parent(tree, comps, ctx)? else {
        if state.written.contains(&Vec::new()) && tree.root.meta != meta {
            return Err(ApplyError::Duplicate {
                layer: ctx.layer(),
                path: ctx.path.clone(),
            });
        }
        tree.root.meta = meta;
        state.written.insert(Vec::new());
        return Ok(());
    };
    let mut key_comps = parent.clone();
    key_comps.push(name.clone());
    let key = join(&key_comps);
    let dir = ensure_dir(&mut tree.root, &parent, ctx)?;
    if state.written.contains(&key) {
        return match dir.entries.get(&name) {
            Some(Entry::Directory(d)) if d.meta == meta => Ok(()),
            _ => Err(ApplyError::Duplicate {
                layer: ctx.layer(),
                path: ctx.path.clone(),
            }),
        };
    }
    match dir.entries.get_mut(&name) {
        Some(Entry::Directory(d)) => d.meta = meta,
        _ => {
            dir.entries.insert(
                name,
                Entry::Directory(Directory {
                    meta,
                    entries: BTreeMap::new(),
                }),
            );
        }
    }
    state.written.insert(key);
    Ok(())
}

/// Whether a repeated entry is the same as the first: equal metadata and kind, and regular
/// files equal bytes. A layer's files are spooled unhashed and named by where they are
/// ([`ContentStore::spool`]), so two copies of the same bytes have different names: their
/// bytes are compared (a repeated path is rare, and so is this read).
fn same_leaf(old: &Leaf, new: &Leaf, store: Option<&ContentStore>) -> io::Result<bool> {
    match (&old.kind, &new.kind, store) {
        (LeafKind::Regular(a), LeafKind::Regular(b), Some(store))
            if old.meta == new.meta && a.size == b.size && a != b =>
        {
            same_bytes(store, a, b)
        }
        _ => Ok(old == new),
    }
}

/// Whether two stored contents of the same size hold the same bytes.
fn same_bytes(store: &ContentStore, a: &Content, b: &Content) -> io::Result<bool> {
    let (mut ra, mut rb) = (store.open(a)?, store.open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut left = a.size;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(ba.len());
        ra.read_exact(&mut ba[..n])?;
        rb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

/// Places `leaf` at `comps`. `store` holds the layer's file contents, for comparing a
/// repeated entry's bytes with the first one's.
fn put_leaf(
    tree: &mut Tree,
    comps: &[Vec<u8>],
    leaf: NewLeaf,
    ctx: &Ctx<'_>,
    store: Option<&ContentStore>,
    state: &mut LayerState,
) -> Result<LeafId, ApplyError> {
    let Some((parent, name)) = resolve_parent(tree, comps, ctx)? else {
        return Err(ApplyError::RootNotDirectory {
            layer: ctx.layer(),
            path: ctx.path.clone(),
        });
    };
    let mut key_comps = parent.clone();
    key_comps.push(name.clone());
    let key = join(&key_comps);
    let existing = dir_at(&tree.root, &parent).and_then(|d| d.entries.get(&name));
    let duplicate = || ApplyError::Duplicate {
        layer: ctx.layer(),
        path: ctx.path.clone(),
    };
    if state.written.contains(&key) {
        // Only an identical entry may repeat: same inode for a link, equal leaf otherwise.
        return match (existing, &leaf) {
            (Some(Entry::Leaf(id)), NewLeaf::Link(new)) if id == new => Ok(*id),
            (Some(Entry::Leaf(id)), NewLeaf::Leaf(new)) => {
                let old = tree.leaves.get(id.0).ok_or_else(duplicate)?;
                let same = same_leaf(old, new, store).map_err(|source| ApplyError::Content {
                    layer: ctx.layer(),
                    path: ctx.path.clone(),
                    offset: ctx.offset,
                    source,
                })?;
                if same {
                    Ok(*id)
                } else {
                    Err(duplicate())
                }
            }
            _ => Err(duplicate()),
        };
    }
    if matches!(existing, Some(Entry::Directory(_))) && state.has_descendants(&key) {
        // Replacing the directory would drop entries this same layer wrote under it.
        return Err(duplicate());
    }
    let id = match leaf {
        NewLeaf::Leaf(leaf) => tree.push_leaf(leaf),
        NewLeaf::Link(id) => id,
    };
    ensure_dir(&mut tree.root, &parent, ctx)?
        .entries
        .insert(name, Entry::Leaf(id));
    state.written.insert(key);
    Ok(id)
}

/// The leaf a hard link's target names (its last component is not followed).
fn link_target(tree: &Tree, target: &[u8], ctx: &Ctx<'_>) -> Result<LeafId, ApplyError> {
    let problem = |problem| ApplyError::HardlinkTarget {
        layer: ctx.layer(),
        path: ctx.path.clone(),
        target: lossy(target),
        problem,
    };
    let comps = normalise(target, ctx)?;
    let Some((parent, name)) = resolve_parent(tree, &comps, ctx)? else {
        return Err(problem("is a directory"));
    };
    match dir_at(&tree.root, &parent).and_then(|d| d.entries.get(&name)) {
        Some(Entry::Leaf(id)) => Ok(*id),
        Some(Entry::Directory(_)) => Err(problem("is a directory")),
        None => Err(problem("does not exist")),
    }
}

/// `.wh.NAME` or `.wh..wh..opq` in directory `dir_comps`.
fn whiteout(
    tree: &mut Tree,
    dir_comps: &[Vec<u8>],
    name: &[u8],
    ctx: &Ctx<'_>,
    state: &LayerState,
) -> Result<(), ApplyError> {
    let opaque = name == b".wh..wh..opq";
    let hidden = match name.strip_prefix(b".wh.") {
        _ if opaque => None,
        Some(n) if !n.is_empty() && n != b"." && n != b".." && !n.starts_with(b".wh.") => Some(n),
        _ => {
            return Err(ApplyError::Whiteout {
                layer: ctx.layer(),
                path: ctx.path.clone(),
            })
        }
    };
    let dir_path = resolve_dir(tree, dir_comps, ctx)?;
    let prefix = join(&dir_path);
    let Some(dir) = dir_at_mut(&mut tree.root, &dir_path) else {
        // Nothing below a missing directory to hide.
        return Ok(());
    };
    match hidden {
        Some(n) => prune_lower(dir, n, &prefix, state),
        None => {
            let names: Vec<Vec<u8>> = dir.entries.keys().cloned().collect();
            for n in names {
                prune_lower(dir, &n, &prefix, state);
            }
        }
    }
    Ok(())
}

/// Removes `dir/name` as far as it came from lower layers: entries the current layer wrote,
/// and directories holding such entries, are kept (their lower-layer children are pruned).
fn prune_lower(dir: &mut Directory, name: &[u8], prefix: &[u8], state: &LayerState) {
    let mut key = prefix.to_vec();
    if !key.is_empty() {
        key.push(b'/');
    }
    key.extend_from_slice(name);
    if !state.touched(&key) {
        dir.entries.remove(name);
        return;
    }
    if let Some(Entry::Directory(sub)) = dir.entries.get_mut(name) {
        let names: Vec<Vec<u8>> = sub.entries.keys().cloned().collect();
        for n in names {
            prune_lower(sub, &n, &key, state);
        }
    }
}

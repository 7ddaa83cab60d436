//! OCI image layouts (as `skopeo copy … oci:DIR` writes them): select one image by its
//! pinned manifest digest and verify every blob on the way.
//!
//! The manifest is looked up in `index.json`, directly or through nested image indexes. If the
//! pinned digest names an image index instead, its single `linux/amd64` manifest is taken (the
//! index digest pins that manifest transitively). The manifest and config blobs are read whole
//! (they are small JSON; a size limit guards against hostile layouts) and checked against their
//! descriptors' size and sha256 before they are parsed. Layer blobs are large, so here they are
//! only checked to exist with the declared size; [`crate::inputs::layer::open_layer`] hashes
//! each one right before it is parsed.

use std::io::Read;
use std::path::{Path, PathBuf};

use measurements::Sha256Digest;
use oci_spec::image::{
    Arch, Descriptor, DigestAlgorithm, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
    OciLayout, Os,
};
use sha2::{Digest as _, Sha256};

/// The largest manifest, index or config blob accepted, in bytes. Real ones are a few KiB;
/// the limit only stops a hostile layout from making the build read gigabytes of JSON.
pub const MAX_JSON_BLOB: u64 = 4 << 20;

/// How deep image indexes may nest inside `index.json` before the search gives up.
const MAX_INDEX_DEPTH: usize = 4;

/// Docker's media type for a gzip-compressed layer, accepted as the OCI `tar+gzip` equivalent.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// One image selected from a layout: its verified manifest, config and layer list.
#[derive(Debug, Clone)]
pub struct OciImage {
    /// Digest of the image manifest (equal to the pin unless the pin named an index).
    pub manifest_digest: Sha256Digest,
    /// Digest of the image index the pin named, when it named one rather than a manifest.
    pub index_digest: Option<Sha256Digest>,
    /// Digest of the config blob.
    pub config_digest: Sha256Digest,
    /// The parsed image configuration (entrypoint, env, ...).
    pub config: ImageConfiguration,
    /// The layers, lowest first.
    pub layers: Vec<LayerBlob>,
}

/// A layer blob on disk with the digest and size it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Where the blob is.
    pub path: PathBuf,
    /// sha256 of the blob as stored (compressed).
    pub digest: Sha256Digest,
    /// Size of the blob as stored, in bytes.
    pub size: u64,
    /// The descriptor's media type (for a plain tar file: the detected compression's OCI type).
    pub media_type: String,
    /// How the tar stream is compressed.
    pub compression: Compression,
    /// sha256 of the uncompressed tar stream, from the image config's `rootfs.diff_ids`
    /// (checked while the layer is decompressed, see [`super::layer::LayerReader::finish`]);
    /// `None` for a plain tar file.
    pub diff_id: Option<Sha256Digest>,
}

/// The compression of a layer's tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (RFC 1952), possibly several concatenated members.
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Why an OCI layout or a pinned tar file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciLayoutError {
    /// A file of the layout cannot be read.
    #[error("cannot read {what} {path}: {source}; check that the OCI layout is complete")]
    Io {
        /// What the file is (`index.json`, `manifest blob`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `oci-layout` marker file is missing, unparsable or of an unknown version.
    #[error("{path} is not an OCI image layout marker ({reason}); point the manifest at a directory written by `skopeo copy ... oci:DIR`")]
    LayoutHeader {
        /// The `oci-layout` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON document of the layout does not parse.
    #[error("{what} {path} is not valid: {source}")]
    Json {
        /// What the document is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: oci_spec::OciSpecError,
    },
    /// A descriptor uses a digest algorithm other than sha256.
    #[error("{what} has digest {digest}, but only sha256 digests are supported; re-copy the image with sha256 digests")]
    UnsupportedDigest {
        /// Which descriptor.
        what: String,
        /// The digest as written.
        digest: String,
    },
    /// The pinned digest is not referenced from `index.json` (nor any nested index).
    #[error("the layout {layout} has no manifest with digest sha256:{wanted} (it has: {available}); pin one of those or re-copy the image")]
    ManifestNotFound {
        /// The layout directory.
        layout: PathBuf,
        /// The pinned digest.
        wanted: Sha256Digest,
        /// The sha256 digests `index.json` does reference, comma-separated.
        available: String,
    },
    /// A blob has a size other than its descriptor says.
    #[error("{what} {path} is {found} bytes, but its descriptor says {expected}; the layout is damaged, copy the image again")]
    BlobSize {
        /// Which blob.
        what: String,
        /// The blob file.
        path: PathBuf,
        /// The descriptor's size.
        expected: u64,
        /// The file's size.
        found: u64,
    },
    /// A blob's sha256 differs from its descriptor (or from the pin).
    #[error("{what} {path} has sha256:{found}, but sha256:{expected} was expected; the blob is damaged or not the pinned one")]
    BlobDigest {
        /// Which blob.
        what: String,
        /// The blob file.
        path: PathBuf,
        /// The expected digest.
        expected: Sha256Digest,
        /// The digest of the bytes found.
        found: Sha256Digest,
    },
    /// A JSON blob is larger than [`MAX_JSON_BLOB`].
    #[error("{what} {path} declares {size} bytes, more than the {MAX_JSON_BLOB}-byte limit for JSON blobs")]
    BlobTooLarge {
        /// Which blob.
        what: String,
        /// The blob file.
        path: PathBuf,
        /// The declared size.
        size: u64,
    },
    /// The pinned descriptor is neither an image manifest nor an image index.
    #[error("sha256:{digest} has media type {media_type:?}, which is not an image manifest or index; pin the image manifest's digest")]
    NotAManifest {
        /// The pinned digest.
        digest: Sha256Digest,
        /// Its media type.
        media_type: String,
    },
    /// The pinned image index does not have exactly one linux/amd64 manifest.
    #[error("image index sha256:{index} has {found} linux/amd64 manifests, not exactly one; pin the manifest digest instead")]
    Platform {
        /// The index's digest.
        index: Sha256Digest,
        /// How many linux/amd64 manifests it lists.
        found: usize,
    },
    /// Image indexes nest deeper than the search allows.
    #[error("image indexes in {layout} nest more than {MAX_INDEX_DEPTH} deep; pin a manifest nearer the top")]
    NestingTooDeep {
        /// The layout directory.
        layout: PathBuf,
    },
    /// The config descriptor has an unexpected media type.
    #[error("the config of manifest sha256:{manifest} has media type {media_type:?}, not an image config")]
    ConfigMediaType {
        /// The manifest's digest.
        manifest: Sha256Digest,
        /// The config descriptor's media type.
        media_type: String,
    },
    /// The image config's `rootfs.diff_ids` do not match its layers.
    #[error("image config sha256:{config}: {problem}; the config does not describe these layers, re-copy the image")]
    DiffIds {
        /// The config's digest.
        config: Sha256Digest,
        /// What is wrong.
        problem: String,
    },
    /// A layer has a media type this builder does not apply (non-distributable/foreign
    /// layers, unknown compressions, artifacts).
    #[error("layer {index} ({digest}) of manifest sha256:{manifest} has media type {media_type:?}; only OCI tar, tar+gzip, tar+zstd and Docker tar.gzip layers are supported, rebuild or re-copy the image with one of those")]
    LayerMediaType {
        /// The manifest's digest.
        manifest: Sha256Digest,
        /// Position of the layer in the manifest, from 0 (lowest).
        index: usize,
        /// The layer's digest as written.
        digest: String,
        /// The unsupported media type.
        media_type: String,
    },
}

/// The images `index.json` lists, as `sha256:HEX` followed by ` (TAG)` where the descriptor
/// has an `org.opencontainers.image.ref.name` annotation. Empty when the index is unreadable.
/// For messages only: nothing read here is trusted.
pub fn list_manifests(layout: &Path) -> Vec<String> {
    let index_path = layout.join("index.json");
    let Ok(bytes) = read_limited(&index_path, "index.json") else {
        return Vec::new();
    };
    let Ok(index) = ImageIndex::from_reader(bytes.as_slice()) else {
        return Vec::new();
    };
    index
        .manifests()
        .iter()
        .filter_map(|d| {
            let digest = sha256_of(d)?;
            let tag = d
                .annotations()
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            Some(format!("sha256:{}{tag}", digest.to_hex()))
        })
        .collect()
}

/// Opens the OCI image layout in `layout` and selects the image whose manifest (or image
/// index, see the module docs) has the digest `pin`.
///
/// Reads and verifies `oci-layout`, `index.json`, the manifest and the config; checks that
/// every layer blob exists with its declared size and has a supported media type.
pub fn open_image(layout: &Path, pin: &Sha256Digest) -> Result<OciImage, OciLayoutError> {
    check_layout_header(layout)?;
    let index_path = layout.join("index.json");
    let index_bytes = read_limited(&index_path, "index.json")?;
    let index =
        ImageIndex::from_reader(index_bytes.as_slice()).map_err(|source| OciLayoutError::Json {
            what: "index.json",
            path: index_path.clone(),
            source,
        })?;
    let Some(desc) = find_descriptor(layout, &index, pin, 0)? else {
        let available: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(|d| sha256_of(d).map(|h| h.to_hex()))
            .collect();
        return Err(OciLayoutError::ManifestNotFound {
            layout: layout.to_owned(),
            wanted: *pin,
            available: available.join(", "),
        });
    };
    let media_type = desc.media_type().as_ref().to_owned();
    let (manifest_digest, manifest_bytes, index_digest) = if is_manifest(&media_type) {
        (*pin, read_json_blob(layout, &desc, "manifest")?, None)
    } else if is_index(&media_type) {
        let bytes = read_json_blob(layout, &desc, "image index")?;
        let path = blob_path(layout, pin);
        let nested =
            ImageIndex::from_reader(bytes.as_slice()).map_err(|source| OciLayoutError::Json {
                what: "image index",
                path,
                source,
            })?;
        let amd64: Vec<&Descriptor> = nested
            .manifests()
            .iter()
            .filter(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == Arch::Amd64)
            })
            .collect();
        let [only] = amd64.as_slice() else {
            return Err(OciLayoutError::Platform {
                index: *pin,
                found: amd64.len(),
            });
        };
        let digest = require_sha256(only, "linux/amd64 manifest")?;
        (
            digest,
            read_json_blob(layout, only, "manifest")?,
            Some(*pin),
        )
    } else {
        return Err(OciLayoutError::NotAManifest {
            digest: *pin,
            media_type,
        });
    };

    let manifest_path = blob_path(layout, &manifest_digest);
    let manifest = ImageManifest::from_reader(manifest_bytes.as_slice()).map_err(|source| {
        OciLayoutError::Json {
            what: "manifest",
            path: manifest_path,
            source,
        }
    })?;
    if let Some(mt) = manifest.media_type() {
        if !is_manifest(mt.as_ref()) {
            return Err(OciLayoutError::NotAManifest {
                digest: manifest_digest,
                media_type: mt.as_ref().to_owned(),
            });
        }
    }

    let config_desc = manifest.config();
    let config_type = config_desc.media_type().as_ref();
    if !(config_type == MediaType::ImageConfig.as_ref() || config_type == DOCKER_CONFIG) {
        return Err(OciLayoutError::ConfigMediaType {
            manifest: manifest_digest,
            media_type: config_type.to_owned(),
        });
    }
    let config_digest = require_sha256(config_desc, "image config")?;
    let config_bytes = read_json_blob(layout, config_desc, "image config")?;
    let config = ImageConfiguration::from_reader(config_bytes.as_slice()).map_err(|source| {
        OciLayoutError::Json {
            what: "image config",
            path: blob_path(layout, &config_digest),
            source,
        }
    })?;

    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(OciLayoutError::DiffIds {
            config: config_digest,
            problem: format!(
                "rootfs.diff_ids lists {} layers, the manifest {}",
                diff_ids.len(),
                manifest.layers().len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(manifest.layers().len());
    for (i, d) in manifest.layers().iter().enumerate() {
        let diff_id: Sha256Digest = diff_ids[i].parse().map_err(|e| OciLayoutError::DiffIds {
            config: config_digest,
            problem: format!("rootfs.diff_ids[{i}] {:?}: {e}", diff_ids[i]),
        })?;
        let media_type = d.media_type().as_ref().to_owned();
        let Some(compression) = layer_compression(&media_type) else {
            return Err(OciLayoutError::LayerMediaType {
                manifest: manifest_digest,
                index: i,
                digest: d.digest().to_string(),
                media_type,
            });
        };
        let what = format!("layer {i}");
        let digest = require_sha256(d, &what)?;
        let path = blob_path(layout, &digest);
        let found = file_size(&path, "layer blob")?;
        if found != d.size() {
            return Err(OciLayoutError::BlobSize {
                what,
                path,
                expected: d.size(),
                found,
            });
        }
        layers.push(LayerBlob {
            path,
            digest,
            size: d.size(),
            media_type,
            compression,
            diff_id: Some(diff_id),
        });
    }
    Ok(OciImage {
        manifest_digest,
        index_digest,
        config_digest,
        config,
        layers,
    })
}

/// Pins a plain tar file (optionally gzip- or zstd-compressed, detected from its first bytes)
/// as a layer. The digest is checked when the layer is opened
/// ([`crate::inputs::layer::open_layer`]), before it is parsed.
pub fn tar_blob(path: &Path, digest: &Sha256Digest) -> Result<LayerBlob, OciLayoutError> {
    let io_err = |source| OciLayoutError::Io {
        what: "tar layer",
        path: path.to_owned(),
        source,
    };
    let mut file = fs_err::File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let mut magic = Vec::with_capacity(4);
    (&mut file)
        .take(4)
        .read_to_end(&mut magic)
        .map_err(io_err)?;
    let compression = detect_compression(&magic);
    let media_type = match compression {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    };
    Ok(LayerBlob {
        path: path.to_owned(),
        digest: *digest,
        size,
        media_type: media_type.as_ref().to_owned(),
        compression,
        diff_id: None,
    })
}

/// The compression a stream's first bytes announce: gzip `1f 8b`, zstd `28 b5 2f fd`,
/// anything else is taken as plain tar.
pub fn detect_compression(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The compression of a supported layer media type, or `None` for every other type.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip" | DOCKER_LAYER_GZIP => {
            Some(Compression::Gzip)
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

fn is_manifest(media_type: &str) -> bool {
    media_type == MediaType::ImageManifest.as_ref() || media_type == DOCKER_MANIFEST
}

fn is_index(media_type: &str) -> bool {
    media_type == MediaType::ImageIndex.as_ref() || media_type == DOCKER_MANIFEST_LIST
}

fn check_layout_header(layout: &Path) -> Result<(), OciLayoutError> {
    let path = layout.join("oci-layout");
    let bytes = read_limited(&path, "oci-layout marker")?;
    let header =
        OciLayout::from_reader(bytes.as_slice()).map_err(|e| OciLayoutError::LayoutHeader {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if header.image_layout_version() != "1.0.0" {
        return Err(OciLayoutError::LayoutHeader {
            path,
            reason: format!(
                "imageLayoutVersion {:?}, expected \"1.0.0\"",
                header.image_layout_version()
            ),
        });
    }
    Ok(())
}

/// Depth-first search of `index` (and the image indexes it references) for `want`.
fn find_descriptor(
    layout: &Path,
    index: &ImageIndex,
    want: &Sha256Digest,
    depth: usize,
) -> Result<Option<Descriptor>, OciLayoutError> {
    if let Some(d) = index
        .manifests()
        .iter()
        .find(|d| sha256_of(d) == Some(*want))
    {
        return Ok(Some(d.clone()));
    }
    for d in index.manifests() {
        if !is_index(d.media_type().as_ref()) || sha256_of(d).is_none() {
            continue;
        }
        if depth >= MAX_INDEX_DEPTH {
            return Err(OciLayoutError::NestingTooDeep {
                layout: layout.to_owned(),
            });
        }
        let bytes = read_json_blob(layout, d, "image index")?;
        let path = blob_path(layout, &require_sha256(d, "image index")?);
        let nested =
            ImageIndex::from_reader(bytes.as_slice()).map_err(|source| OciLayoutError::Json {
                what: "image index",
                path,
                source,
            })?;
        if let Some(found) = find_descriptor(layout, &nested, want, depth + 1)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn sha256_of(d: &Descriptor) -> Option<Sha256Digest> {
    match d.digest().algorithm() {
        DigestAlgorithm::Sha256 => d.digest().digest().parse().ok(),
        _ => None,
    }
}

fn require_sha256(d: &Descriptor, what: &str) -> Result<Sha256Digest, OciLayoutError> {
    sha256_of(d).ok_or_else(|| OciLayoutError::UnsupportedDigest {
        what: what.to_owned(),
        digest: d.digest().to_string(),
    })
}

/// `LAYOUT/blobs/sha256/HEX`; the hex comes from a parsed digest, so it cannot climb out.
fn blob_path(layout: &Path, digest: &Sha256Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.to_hex())
}

fn file_size(path: &Path, what: &'static str) -> Result<u64, OciLayoutError> {
    fs_err::metadata(path)
        .map(|m| m.len())
        .map_err(|source| OciLayoutError::Io {
            what,
            path: path.to_owned(),
            source,
        })
}

/// Reads a small file whole, refusing more than [`MAX_JSON_BLOB`] bytes.
fn read_limited(path: &Path, what: &'static str) -> Result<Vec<u8>, OciLayoutError> {
    let io_err = |source| OciLayoutError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let file = fs_err::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BLOB + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_JSON_BLOB {
        return Err(OciLayoutError::BlobTooLarge {
            what: what.to_owned(),
            path: path.to_owned(),
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Reads the JSON blob `d` names and checks its size and sha256 against `d`.
fn read_json_blob(
    layout: &Path,
    d: &Descriptor,
    what: &'static str,
) -> Result<Vec<u8>, OciLayoutError> {
    let digest = require_sha256(d, what)?;
    let path = blob_path(layout, &digest);
    if d.size() > MAX_JSON_BLOB {
        return Err(OciLayoutError::BlobTooLarge {
            what: what.to_owned(),
            path,
            size: d.size(),
        });
    }
    let bytes = read_limited(&path, what)?;
    if bytes.len() as u64 != d.size() {
        return Err(OciLayoutError::BlobSize {
            what: what.to_owned(),
            path,
            expected: d.size(),
            found: bytes.len() as u64,
        });
    }
    let found = Sha256Digest::from(<[u8; 32]>::from(Sha256::digest(&bytes)));
    if found != digest {
        return Err(OciLayoutError::BlobDigest {
            what: what.to_owned(),
            path,
            expected: digest,
            found,
        });
    }
    Ok(bytes)
}

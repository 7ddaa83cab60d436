//! The OCI layout of a published release: media types, and the manifests as pure functions.
//!
//! A release is ONE OCI image manifest (OCI image-spec 1.1 "artifact" form):
//!
//! ```text
//! manifest  mediaType    application/vnd.oci.image.manifest.v1+json
//!           artifactType application/vnd.enclave-builder.release.v1
//!           config       the OCI empty descriptor (application/vnd.oci.empty.v1+json, `{}`)
//!           layers       one per file, sorted by name; each with its media type (FileKind)
//!                        and the annotation org.opencontainers.image.title = the file name
//! ```
//!
//! Each signed attachment (`*.intoto.json`, a DSSE envelope) is a referrer: its own manifest
//! whose `subject` is the release manifest's descriptor, with an artifact type naming what it
//! is (EnvelopeKind) and one layer, the envelope. Nothing here depends on the clock or the
//! host: the same files give the same manifest bytes, hence the same digest.
//!
//! Changing any constant or the serialisation below changes every release digest.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use measurements::Sha256Digest;
use serde::{Deserialize, Serialize};

/// The release manifest's `artifactType`.
pub const RELEASE_ARTIFACT_TYPE: &str = "application/vnd.enclave-builder.release.v1";
/// OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type (the referrers list, and the tag-schema fallback).
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI empty descriptor's media type (image-spec 1.1, "Guidance for an empty descriptor").
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The OCI empty blob: `{}`.
pub const EMPTY_BLOB: &[u8] = b"{}";
/// The annotation holding a layer's file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The layer media type of a DSSE envelope (as in-toto / Sigstore use it).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Signed attachments are the files whose name ends with this.
pub const ENVELOPE_SUFFIX: &str = ".intoto.json";
/// The signers' public keys shipped with a release (SPKI PEM) end with this; each is attached
/// like an envelope, never a subject.
pub const KEY_SUFFIX: &str = ".pub";
/// The layer media type of a public key attachment.
pub const KEY_MEDIA_TYPE: &str = "application/x-pem-file";
/// Maximum size of a manifest or index read from a registry (the distribution spec's
/// recommended limit).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// What a release file is, by name; each kind has its own layer media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// `record.json` (schema `enclave-builder.record.v1`).
    Record,
    /// An EROFS image with its dm-verity hash area (`rootfs.img`, `disk-NAME.img`).
    Disk,
    /// The kernel (`vmlinuz`).
    Kernel,
    /// The initramfs (`initrd.img`, a newc archive).
    Initrd,
    /// The firmware (`*.fd`).
    Firmware,
    /// The kernel command line (`cmdline`).
    Cmdline,
    /// A shell script (`*.sh`, e.g. `run-qemu.sh`); restored executable.
    Script,
    /// Any other file a record lists.
    Other,
}

impl FileKind {
    /// The kind of a release file, from its name.
    pub fn of(name: &str) -> FileKind {
        match name {
            "record.json" => FileKind::Record,
            "vmlinuz" => FileKind::Kernel,
            "initrd.img" => FileKind::Initrd,
            "cmdline" => FileKind::Cmdline,
            _ if name.ends_with(".img") => FileKind::Disk,
            _ if name.ends_with(".fd") => FileKind::Firmware,
            _ if name.ends_with(".sh") => FileKind::Script,
            _ => FileKind::Other,
        }
    }

    /// The layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            FileKind::Record => "application/vnd.enclave-builder.record.v1+json",
            FileKind::Disk => "application/vnd.enclave-builder.disk.erofs-verity.v1",
            FileKind::Kernel => "application/vnd.enclave-builder.kernel.v1",
            FileKind::Initrd => "application/vnd.enclave-builder.initrd.newc.v1",
            FileKind::Firmware => "application/vnd.enclave-builder.firmware.v1",
            FileKind::Cmdline => "application/vnd.enclave-builder.cmdline.v1+text",
            FileKind::Script => "application/vnd.enclave-builder.script.v1+sh",
            FileKind::Other => "application/vnd.enclave-builder.file.v1",
        }
    }

    /// The mode a pulled file gets (a script is executable, as `build` writes it).
    pub fn mode_for_media_type(media_type: &str) -> u32 {
        if media_type == FileKind::Script.media_type() {
            0o755
        } else {
            0o644
        }
    }
}

/// What a signed attachment is, by name; each kind has its own artifact type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeKind {
    /// `release.intoto.json`: the publisher's signature over the release.
    Release,
    /// `provenance.intoto.json`: build provenance.
    Provenance,
    /// `rebuild-HEX.intoto.json`: an independent rebuilder's attestation.
    Rebuild,
    /// `publisher-HEX.pub`, `rebuild-HEX.pub`: a signer's public key (SPKI PEM); a client uses
    /// it only when its fingerprint is pinned.
    Key,
}

impl EnvelopeKind {
    /// All kinds.
    pub const ALL: [EnvelopeKind; 4] = [
        EnvelopeKind::Release,
        EnvelopeKind::Provenance,
        EnvelopeKind::Rebuild,
        EnvelopeKind::Key,
    ];

    /// What a refused attachment name should have looked like.
    pub const NAMES: &'static str = "an attachment must be named release.intoto.json, provenance.intoto.json, rebuild-HEX.intoto.json, publisher-HEX.pub or rebuild-HEX.pub";

    /// True for names that are attachments (possibly malformed ones), not release files.
    pub fn is_attachment_name(name: &str) -> bool {
        name.ends_with(ENVELOPE_SUFFIX) || name.ends_with(KEY_SUFFIX)
    }

    /// The kind of an attachment named `name`, or `None` for a name no kind takes.
    pub fn of(name: &str) -> Option<EnvelopeKind> {
        let is_hex = |hex: &str| {
            !hex.is_empty()
                && hex.len() <= 128
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if let Some(stem) = name.strip_suffix(KEY_SUFFIX) {
            let hex = stem
                .strip_prefix("publisher-")
                .or_else(|| stem.strip_prefix("rebuild-"))?;
            return is_hex(hex).then_some(EnvelopeKind::Key);
        }
        let stem = name.strip_suffix(ENVELOPE_SUFFIX)?;
        match stem {
            "release" => Some(EnvelopeKind::Release),
            "provenance" => Some(EnvelopeKind::Provenance),
            _ => is_hex(stem.strip_prefix("rebuild-")?).then_some(EnvelopeKind::Rebuild),
        }
    }

    /// The media type of the attachment's one layer.
    pub fn media_type(self) -> &'static str {
        match self {
            EnvelopeKind::Key => KEY_MEDIA_TYPE,
            _ => DSSE_MEDIA_TYPE,
        }
    }

    /// The referrer manifest's `artifactType`.
    pub fn artifact_type(self) -> &'static str {
        match self {
            EnvelopeKind::Release => "application/vnd.enclave-builder.signature.v1",
            EnvelopeKind::Provenance => "application/vnd.enclave-builder.provenance.v1",
            EnvelopeKind::Rebuild => "application/vnd.enclave-builder.rebuild.v1",
            EnvelopeKind::Key => "application/vnd.enclave-builder.key.v1",
        }
    }

    /// The kind with this artifact type.
    pub fn from_artifact_type(t: &str) -> Option<EnvelopeKind> {
        Self::ALL.into_iter().find(|k| k.artifact_type() == t)
    }
}

/// Problems with a digest, a file name or a manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// Not `sha256:` followed by 64 lowercase hex digits.
    #[error("{0:?} is not a digest: expected sha256: followed by 64 lowercase hex digits")]
    BadDigest(String),
    /// A file name that cannot be a release file.
    #[error("{name:?} cannot be a release file name: {why}")]
    BadTitle {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// Two layers (or attachments) with the same file name.
    #[error("manifest {manifest}: two entries are named {name:?}")]
    DuplicateTitle {
        /// The manifest digest.
        manifest: String,
        /// The name.
        name: String,
    },
    /// A manifest that is not JSON of the expected shape.
    #[error("manifest {manifest}: not an OCI manifest: {source}")]
    Json {
        /// The manifest digest.
        manifest: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest field with an unexpected value.
    #[error("manifest {manifest}: {field} is {found:?}, expected {expected}")]
    Field {
        /// The manifest digest.
        manifest: String,
        /// The field (`artifactType`, `layers[2].annotations`...).
        field: String,
        /// What it holds.
        found: String,
        /// What it must hold.
        expected: String,
    },
    /// A manifest larger than [`MAX_MANIFEST_SIZE`].
    #[error("manifest {manifest} is {size} bytes, over the {MAX_MANIFEST_SIZE}-byte limit")]
    TooLarge {
        /// The manifest digest.
        manifest: String,
        /// Its size.
        size: usize,
    },
}

/// A sha256 content digest in OCI form (`sha256:` + 64 lowercase hex digits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OciDigest(pub Sha256Digest);

impl OciDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> OciDigest {
        OciDigest(Sha256Digest::of(bytes))
    }

    /// The digest a finished hasher holds.
    pub fn from_hasher(h: sha2::Sha256) -> OciDigest {
        use sha2::Digest as _;
        OciDigest(Sha256Digest(h.finalize().into()))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> String {
        self.0.to_hex()
    }
}

impl fmt::Display for OciDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0.to_hex())
    }
}

impl fmt::Debug for OciDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for OciDigest {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || LayoutError::BadDigest(s.to_owned());
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        hex.parse::<Sha256Digest>()
            .map(OciDigest)
            .map_err(|_| bad())
    }
}

/// A release file name: one path component, printable, no `/`, not `.`/`..`, not hidden.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Title(String);

impl Title {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Title {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| LayoutError::BadTitle {
            name: s.to_owned(),
            why,
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > 255 {
            return Err(bad("it is longer than 255 bytes"));
        }
        if s.contains('/') || s.contains('\\') {
            return Err(bad("it contains a path separator"));
        }
        if s == "." || s == ".." || s.contains("..") {
            return Err(bad("it contains `..`"));
        }
        if s.starts_with('.') {
            return Err(bad("it is a hidden name (starts with `.`)"));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(bad("it contains a control character"));
        }
        Ok(Title(s.to_owned()))
    }
}

/// One blob of a release: a file with its media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The file name.
    pub title: Title,
    /// The layer media type.
    pub media_type: String,
    /// The content digest.
    pub digest: OciDigest,
    /// The size in bytes.
    pub size: u64,
}

/// An OCI content descriptor, as serialised (field order is part of the digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Its digest (`sha256:...`).
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// The artifact type (for manifests in a referrers index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations (sorted by key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image manifest, as serialised (field order is part of the digest).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`].
    #[serde(default)]
    pub media_type: Option<String>,
    /// What the artifact is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob (here the empty descriptor).
    pub config: Descriptor,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image index (the referrers tag-schema fallback).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`INDEX_MEDIA_TYPE`].
    #[serde(default)]
    pub media_type: Option<String>,
    /// The manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// The empty config descriptor.
pub fn empty_descriptor() -> Descriptor {
    Descriptor {
        media_type: EMPTY_MEDIA_TYPE.to_owned(),
        digest: OciDigest::of(EMPTY_BLOB).to_string(),
        size: EMPTY_BLOB.len() as u64,
        artifact_type: None,
        annotations: None,
    }
}

fn layer(blob: &Blob) -> Descriptor {
    Descriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.to_string(),
        size: blob.size,
        artifact_type: None,
        annotations: Some(BTreeMap::from([(
            TITLE_ANNOTATION.to_owned(),
            blob.title.as_str().to_owned(),
        )])),
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs (strings, integers, BTreeMaps with string keys) cannot
    // fail: serde_json only errors on non-string map keys or failing Serialize impls.
    serde_json::to_vec(value).expect("manifest serialisation cannot fail")
}

/// The release manifest for `files` (in any order: layers are sorted by name). Returns the
/// exact bytes to push; their sha256 is the release digest.
pub fn release_manifest(files: &[Blob]) -> Vec<u8> {
    let mut sorted: Vec<&Blob> = files.iter().collect();
    sorted.sort_by(|a, b| a.title.cmp(&b.title));
    to_json(&Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
        artifact_type: Some(RELEASE_ARTIFACT_TYPE.to_owned()),
        config: empty_descriptor(),
        layers: sorted.into_iter().map(layer).collect(),
        subject: None,
        annotations: None,
    })
}

/// The descriptor of a manifest with these bytes.
pub fn manifest_descriptor(bytes: &[u8], artifact_type: Option<&str>) -> Descriptor {
    Descriptor {
        media_type: MANIFEST_MEDIA_TYPE.to_owned(),
        digest: OciDigest::of(bytes).to_string(),
        size: bytes.len() as u64,
        artifact_type: artifact_type.map(str::to_owned),
        annotations: None,
    }
}

/// The referrer manifest attaching `envelope` (a DSSE envelope of `kind`) to the release
/// manifest described by `subject`.
pub fn referrer_manifest(subject: &Descriptor, envelope: &Blob, kind: EnvelopeKind) -> Vec<u8> {
    let subject = Descriptor {
        artifact_type: None,
        annotations: None,
        ..subject.clone()
    };
    to_json(&Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
        artifact_type: Some(kind.artifact_type().to_owned()),
        config: empty_descriptor(),
        layers: vec![layer(envelope)],
        subject: Some(subject),
        annotations: None,
    })
}

/// The tag holding the referrers index under the distribution spec's tag-schema fallback.
pub fn referrers_tag(subject: &OciDigest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The tag-schema referrers index with `entry` added (or the same bytes' index if it is
/// listed already). `existing` is the index currently under the tag, if any.
pub fn add_referrer(
    existing: Option<&[u8]>,
    entry: Descriptor,
    tag: &str,
) -> Result<Vec<u8>, LayoutError> {
    let mut index = match existing {
        Some(bytes) => {
            serde_json::from_slice::<Index>(bytes).map_err(|source| LayoutError::Json {
                manifest: format!("tag {tag}"),
                source,
            })?
        }
        None => Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
            manifests: Vec::new(),
        },
    };
    if !index.manifests.iter().any(|d| d.digest == entry.digest) {
        index.manifests.push(entry);
    }
    Ok(to_json(&index))
}

fn field(manifest: &OciDigest, field: &str, found: &str, expected: &str) -> LayoutError {
    LayoutError::Field {
        manifest: manifest.to_string(),
        field: field.to_owned(),
        found: found.to_owned(),
        expected: expected.to_owned(),
    }
}

fn parse_manifest(bytes: &[u8], digest: &OciDigest) -> Result<Manifest, LayoutError> {
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(LayoutError::TooLarge {
            manifest: digest.to_string(),
            size: bytes.len(),
        });
    }
    let m: Manifest = serde_json::from_slice(bytes).map_err(|source| LayoutError::Json {
        manifest: digest.to_string(),
        source,
    })?;
    if m.schema_version != 2 {
        return Err(field(
            digest,
            "schemaVersion",
            &m.schema_version.to_string(),
            "2",
        ));
    }
    let mt = m.media_type.as_deref().unwrap_or("");
    if mt != MANIFEST_MEDIA_TYPE {
        return Err(field(digest, "mediaType", mt, MANIFEST_MEDIA_TYPE));
    }
    Ok(m)
}

fn parse_blob(d: &Descriptor, digest: &OciDigest, at: &str) -> Result<Blob, LayoutError> {
    let title = d
        .annotations
        .as_ref()
        .and_then(|a| a.get(TITLE_ANNOTATION))
        .ok_or_else(|| {
            field(
                digest,
                &format!("{at}.annotations"),
                "without a title",
                TITLE_ANNOTATION,
            )
        })?;
    Ok(Blob {
        title: title.parse()?,
        media_type: d.media_type.clone(),
        digest: d.digest.parse()?,
        size: d.size,
    })
}

/// Parses a release manifest (whose bytes hash to `digest`) into its files, refusing
/// another artifact type, a missing or unsafe file name, and duplicate names.
pub fn parse_release(bytes: &[u8], digest: &OciDigest) -> Result<Vec<Blob>, LayoutError> {
    let m = parse_manifest(bytes, digest)?;
    let at = m.artifact_type.as_deref().unwrap_or("");
    if at != RELEASE_ARTIFACT_TYPE {
        return Err(field(digest, "artifactType", at, RELEASE_ARTIFACT_TYPE));
    }
    let mut seen = BTreeMap::new();
    let mut blobs = Vec::new();
    for (i, d) in m.layers.iter().enumerate() {
        let blob = parse_blob(d, digest, &format!("layers[{i}]"))?;
        if seen.insert(blob.title.clone(), ()).is_some() {
            return Err(LayoutError::DuplicateTitle {
                manifest: digest.to_string(),
                name: blob.title.to_string(),
            });
        }
        blobs.push(blob);
    }
    Ok(blobs)
}

/// Parses a referrer manifest (whose bytes hash to `digest`) attached to `subject`: one
/// DSSE envelope layer whose file name matches the artifact type.
pub fn parse_referrer(
    bytes: &[u8],
    digest: &OciDigest,
    subject: &OciDigest,
) -> Result<(EnvelopeKind, Blob), LayoutError> {
    let m = parse_manifest(bytes, digest)?;
    let at = m.artifact_type.as_deref().unwrap_or("");
    let kind = EnvelopeKind::from_artifact_type(at).ok_or_else(|| {
        field(
            digest,
            "artifactType",
            at,
            "an enclave-builder attachment type",
        )
    })?;
    let subj = m.subject.as_ref().map(|s| s.digest.as_str()).unwrap_or("");
    if subj != subject.to_string() {
        return Err(field(digest, "subject.digest", subj, &subject.to_string()));
    }
    let [d] = m.layers.as_slice() else {
        return Err(field(
            digest,
            "layers",
            &format!("{} layers", m.layers.len()),
            "exactly one",
        ));
    };
    if d.media_type != kind.media_type() {
        return Err(field(
            digest,
            "layers[0].mediaType",
            &d.media_type,
            kind.media_type(),
        ));
    }
    let blob = parse_blob(d, digest, "layers[0]")?;
    if EnvelopeKind::of(blob.title.as_str()) != Some(kind) {
        return Err(field(
            digest,
            "layers[0] title",
            blob.title.as_str(),
            &format!("a file name of the kind {kind:?}"),
        ));
    }
    Ok((kind, blob))
}

#[cfg(test)]
mod tests;

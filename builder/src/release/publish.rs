//! `push` and `pull`: a release directory to and from one OCI artifact.
//!
//! `push` hashes every file (streamed), checks the directory against `record.json`'s
//! `outputs`, builds the release manifest ([`layout::release_manifest`]), uploads each blob
//! the registry lacks (so a release that changes only the model disk re-uploads only that
//! disk and the small files that name it), stores the manifest, then attaches each
//! `*.intoto.json` envelope as a referrer. Rerunning an interrupted push completes it.
//! `pull` takes a digest-pinned reference only, checks every manifest and blob against its
//! digest and size while streaming into `.DIR.partial-*`, and renames that into place only
//! when everything arrived; any failure leaves no `DIR`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::auth::Credentials;
use super::layout::{
    self, Blob, Descriptor, EnvelopeKind, FileKind, LayoutError, OciDigest, Title, EMPTY_BLOB,
    INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, RELEASE_ARTIFACT_TYPE,
};
use super::reference::ImageRef;
use super::registry::{Registry, RegistryError};

/// Largest envelope accepted as an attachment (DSSE envelopes are a few KiB).
const MAX_ENVELOPE: u64 = 16 * 1024 * 1024;

/// Why a push or pull failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// `pull` or `push --attach` got a reference without `@sha256:...`.
    #[error("{reference} names no digest; give the release as REF@sha256:HEX (the digest `push` printed): a tag can be moved, a digest cannot")]
    NoDigest {
        /// The reference.
        reference: String,
    },
    /// `push DIR REF` got a reference with a digest.
    #[error("{reference}: push takes HOST/REPOSITORY[:TAG]; the digest is computed from the files (to attach to an existing release use --attach FILE REF@sha256:...)")]
    DigestInPushRef {
        /// The reference.
        reference: String,
    },
    /// Something in the release directory is not a plain file with a usable name.
    #[error("{path}: {why}; a release directory holds only the build's files, record.json, *.intoto.json envelopes and the signers' *.pub keys")]
    BadEntry {
        /// The entry.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The directory has no record.json.
    #[error("{0} has no record.json, so it is not a build output; push the directory `enclave-builder build --out` wrote")]
    NoRecord(PathBuf),
    /// record.json does not parse.
    #[error("{path}: not a record (expected `outputs`: [{{name, size, sha256}}]): {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The files do not match record.json's outputs.
    #[error("{dir} does not match its record.json:\n  {}\nrebuild, or restore the files the record names", problems.join("\n  "))]
    RecordMismatch {
        /// The directory.
        dir: PathBuf,
        /// One line per problem.
        problems: Vec<String>,
    },
    /// The manifest (from the registry) is not a usable release.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The output directory cannot be created.
    #[error(transparent)]
    Output(#[from] crate::output::Error),
    /// The registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A local file could not be read.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl PublishError {
    /// Whether the input was refused (exit 3) rather than the transfer failing.
    pub fn refused(&self) -> bool {
        !matches!(self, PublishError::Registry(_) | PublishError::Io { .. })
    }
}

/// How to reach the registry.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Credentials (from the auth files).
    pub credentials: Credentials,
    /// Plain HTTP for any registry (test-only; loopback registries use HTTP anyway).
    pub insecure_http: bool,
}

/// One file of a push or pull.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file name.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Its digest.
    pub digest: String,
    /// Whether its bytes were sent (false: the registry had them).
    pub uploaded: bool,
}

/// What a push or pull did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `enclave-builder.push.v1` or `enclave-builder.pull.v1`.
    pub schema: &'static str,
    /// The release, pinned: `HOST/REPO[:TAG]@sha256:...`.
    pub reference: String,
    /// The release manifest digest.
    pub digest: String,
    /// The release files.
    pub files: Vec<FileReport>,
    /// The attached envelopes, with their referrer manifest digests.
    pub attachments: Vec<FileReport>,
    /// Bytes sent or received.
    pub bytes_transferred: u64,
}

impl Report {
    /// Text for a terminal: one line per file, then the digest alone on the last line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let verb = |u: bool| match (self.schema.contains("push"), u) {
            (true, true) => "uploaded",
            (true, false) => "present ",
            (false, _) => "fetched ",
        };
        for f in &self.files {
            s.push_str(&format!(
                "{} {:>12}  {}\n",
                verb(f.uploaded),
                f.size,
                f.name
            ));
        }
        for a in &self.attachments {
            s.push_str(&format!(
                "attached {:>12}  {} ({})\n",
                a.size, a.name, a.digest
            ));
        }
        s.push_str(&format!("{}\n{}\n", self.reference, self.digest));
        s
    }
}

#[derive(Deserialize)]
struct RecordOutputs {
    outputs: Vec<RecordOutput>,
}

#[derive(Deserialize)]
struct RecordOutput {
    name: String,
    size: u64,
    sha256: String,
}

/// sha256 and size of a file ([`crate::pin::hash_file`]), as an OCI digest.
fn hash_file(path: &Path) -> Result<(OciDigest, u64), PublishError> {
    let (digest, size) = crate::pin::hash_file(path).map_err(|source| PublishError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    Ok((OciDigest(digest), size))
}

/// The entries of a release directory.
struct Scanned {
    /// Release files (layers), sorted.
    files: Vec<Title>,
    /// Envelopes (referrers), sorted.
    envelopes: Vec<(Title, EnvelopeKind)>,
}

/// The release files and envelopes of `dir`, sorted by name.
fn scan(dir: &Path) -> Result<Scanned, PublishError> {
    let io = |source| PublishError::Io {
        action: "listing",
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    let mut envelopes = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| bad_entry(&path, "the name is not UTF-8".to_owned()))?;
        let title = title(&path, &name)?;
        let meta = fs_err::symlink_metadata(&path).map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(bad_entry(&path, "not a regular file".to_owned()));
        }
        if EnvelopeKind::is_attachment_name(&name) {
            envelopes.push((title, envelope_kind(&path, &name)?));
        } else {
            files.push(title);
        }
    }
    files.sort();
    envelopes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Scanned { files, envelopes })
}

/// Refuses the entry `path` of a release directory, saying why.
fn bad_entry(path: &Path, why: String) -> PublishError {
    PublishError::BadEntry {
        path: path.to_owned(),
        why,
    }
}

/// The layer title of the file `path`, named `name`.
fn title(path: &Path, name: &str) -> Result<Title, PublishError> {
    name.parse()
        .map_err(|e: LayoutError| bad_entry(path, e.to_string()))
}

/// The kind of the envelope `path`, named `name` (its name says which).
fn envelope_kind(path: &Path, name: &str) -> Result<EnvelopeKind, PublishError> {
    EnvelopeKind::of(name).ok_or_else(|| bad_entry(path, EnvelopeKind::NAMES.to_owned()))
}

/// The manifest digest a reference pins (`REF@sha256:...`); attach and pull need one.
fn pinned_digest(reference: &ImageRef) -> Result<OciDigest, PublishError> {
    reference.digest.ok_or_else(|| PublishError::NoDigest {
        reference: reference.to_string(),
    })
}

/// Connects to the release's registry (logged in to push when `push`), fetches the release
/// manifest `digest` and parses its files.
fn open_release(
    reference: &ImageRef,
    digest: &OciDigest,
    conn: &Connection,
    push: bool,
) -> Result<(Registry, Vec<u8>, Vec<Blob>), PublishError> {
    let reg = Registry::connect(reference, conn.credentials.clone(), conn.insecure_http)?;
    reg.login(push)?;
    let manifest = reg.get_manifest(digest)?;
    let blobs = layout::parse_release(&manifest, digest)?;
    Ok((reg, manifest, blobs))
}

/// Checks the hashed files against record.json's outputs.
fn check_record(dir: &Path, blobs: &[Blob]) -> Result<(), PublishError> {
    let path = dir.join("record.json");
    if !blobs.iter().any(|b| b.title.as_str() == "record.json") {
        return Err(PublishError::NoRecord(dir.to_owned()));
    }
    let text = fs_err::read(&path).map_err(|source| PublishError::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    let record: RecordOutputs =
        serde_json::from_slice(&text).map_err(|source| PublishError::Record {
            path: path.clone(),
            source,
        })?;
    let listed: BTreeMap<&str, &RecordOutput> = record
        .outputs
        .iter()
        .map(|o| (o.name.as_str(), o))
        .collect();
    let mut problems = Vec::new();
    for b in blobs {
        let name = b.title.as_str();
        if name == "record.json" {
            continue;
        }
        match listed.get(name) {
            None => problems.push(format!("{name}: not among the record's outputs")),
            Some(o) if o.size != b.size || o.sha256 != b.digest.hex() => problems.push(format!(
                "{name}: the record says {} bytes, sha256 {}; the file has {} bytes, sha256 {}",
                o.size,
                o.sha256,
                b.size,
                b.digest.hex()
            )),
            Some(_) => {}
        }
    }
    for name in listed.keys() {
        if !blobs.iter().any(|b| b.title.as_str() == *name) {
            problems.push(format!(
                "{name}: listed in the record, missing from the directory"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PublishError::RecordMismatch {
            dir: dir.to_owned(),
            problems,
        })
    }
}

fn ensure_empty_blob(reg: &Registry) -> Result<(), PublishError> {
    let d = OciDigest::of(EMPTY_BLOB);
    if !reg.has_blob(&d)? {
        reg.upload_bytes(EMPTY_BLOB, &d)?;
    }
    Ok(())
}

/// Pushes the release in `dir` to `reference` (`HOST/REPO[:TAG]`).
pub fn push(
    dir: &Path,
    reference: &ImageRef,
    conn: &Connection,
    progress: &dyn Fn(&str),
) -> Result<Report, PublishError> {
    if reference.digest.is_some() {
        return Err(PublishError::DigestInPushRef {
            reference: reference.to_string(),
        });
    }
    let Scanned {
        files: titles,
        envelopes,
    } = scan(dir)?;
    let mut blobs = Vec::new();
    for t in &titles {
        progress(&format!("hashing {t}"));
        let (digest, size) = hash_file(&dir.join(t.as_str()))?;
        blobs.push(Blob {
            title: t.clone(),
            media_type: FileKind::of(t.as_str()).media_type().to_owned(),
            digest,
            size,
        });
    }
    check_record(dir, &blobs)?;
    let manifest = layout::release_manifest(&blobs);
    let digest = OciDigest::of(&manifest);

    let reg = Registry::connect(reference, conn.credentials.clone(), conn.insecure_http)?;
    reg.login(true)?;
    ensure_empty_blob(&reg)?;
    let mut files = Vec::new();
    let mut sent = 0u64;
    for b in &blobs {
        let present = reg.has_blob(&b.digest)?;
        if present {
            progress(&format!("{}: already in the registry", b.title));
        } else {
            progress(&format!("uploading {} ({} bytes)", b.title, b.size));
            reg.upload_file(&dir.join(b.title.as_str()), &b.digest, b.size)?;
            sent += b.size;
        }
        files.push(FileReport {
            name: b.title.to_string(),
            size: b.size,
            digest: b.digest.to_string(),
            uploaded: !present,
        });
    }
    let target = match &reference.tag {
        Some(_) => reference.clone(),
        None => reference.at(digest),
    };
    reg.put_manifest(&target, &manifest, MANIFEST_MEDIA_TYPE)?;
    progress(&format!("stored the release manifest {digest}"));
    let subject = layout::manifest_descriptor(&manifest, Some(RELEASE_ARTIFACT_TYPE));
    let mut attachments = Vec::new();
    for (title, kind) in &envelopes {
        attachments.push(attach_envelope(
            &reg,
            &subject,
            &digest,
            &dir.join(title.as_str()),
            title,
            *kind,
            progress,
        )?);
    }
    Ok(Report {
        schema: "enclave-builder.push.v1",
        reference: reference.at(digest).to_string(),
        digest: digest.to_string(),
        files,
        attachments,
        bytes_transferred: sent,
    })
}

/// Attaches the envelope `file` to the existing release `reference` (`REF@sha256:...`).
pub fn attach(
    file: &Path,
    reference: &ImageRef,
    conn: &Connection,
    progress: &dyn Fn(&str),
) -> Result<Report, PublishError> {
    let digest = pinned_digest(reference)?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad_entry(file, "no file name".to_owned()))?;
    let title = title(file, name)?;
    let kind = envelope_kind(file, name)?;
    let (reg, manifest, blobs) = open_release(reference, &digest, conn, true)?;
    let subject = layout::manifest_descriptor(&manifest, Some(RELEASE_ARTIFACT_TYPE));
    let att = attach_envelope(&reg, &subject, &digest, file, &title, kind, progress)?;
    Ok(Report {
        schema: "enclave-builder.push.v1",
        reference: reference.at(digest).to_string(),
        digest: digest.to_string(),
        files: blobs
            .iter()
            .map(|b| FileReport {
                name: b.title.to_string(),
                size: b.size,
                digest: b.digest.to_string(),
                uploaded: false,
            })
            .collect(),
        bytes_transferred: att.size,
        attachments: vec![att],
    })
}

/// Uploads one envelope as a referrer of `subject` and makes it listed: by the referrers
/// API where the registry has it, else in the tag-schema index `sha256-<hex>`.
fn attach_envelope(
    reg: &Registry,
    subject: &Descriptor,
    subject_digest: &OciDigest,
    path: &Path,
    title: &Title,
    kind: EnvelopeKind,
    progress: &dyn Fn(&str),
) -> Result<FileReport, PublishError> {
    let io = |source| PublishError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    fs_err::File::open(path)
        .map_err(io)?
        .take(MAX_ENVELOPE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_ENVELOPE {
        return Err(PublishError::BadEntry {
            path: path.to_owned(),
            why: format!("larger than {MAX_ENVELOPE} bytes; not a DSSE envelope or a public key"),
        });
    }
    let blob = Blob {
        title: title.clone(),
        media_type: kind.media_type().to_owned(),
        digest: OciDigest::of(&bytes),
        size: bytes.len() as u64,
    };
    ensure_empty_blob(reg)?;
    if !reg.has_blob(&blob.digest)? {
        reg.upload_bytes(&bytes, &blob.digest)?;
    }
    let manifest = layout::referrer_manifest(subject, &blob, kind);
    let digest = OciDigest::of(&manifest);
    let base = reg.repository();
    reg.put_manifest(&base.at(digest), &manifest, MANIFEST_MEDIA_TYPE)?;
    let listed = reg
        .referrers(subject_digest)?
        .iter()
        .any(|d| d.digest == digest.to_string());
    if !listed {
        // No referrers API (or it does not list it yet): the distribution spec's fallback.
        let tag = layout::referrers_tag(subject_digest);
        let existing = reg.get_tag(&tag)?;
        let entry = layout::manifest_descriptor(&manifest, Some(kind.artifact_type()));
        let index = layout::add_referrer(existing.as_deref(), entry, &tag)?;
        reg.put_manifest(&base.tagged(&tag), &index, INDEX_MEDIA_TYPE)?;
        progress(&format!("{title}: listed in the referrers tag {tag}"));
    }
    progress(&format!("attached {title} as {digest}"));
    Ok(FileReport {
        name: title.to_string(),
        size: blob.size,
        digest: digest.to_string(),
        uploaded: true,
    })
}

/// Pulls the release `reference` (`REF@sha256:...`) into the new directory `out`.
pub fn pull(
    reference: &ImageRef,
    out: &Path,
    conn: &Connection,
    progress: &dyn Fn(&str),
) -> Result<Report, PublishError> {
    let digest = pinned_digest(reference)?;
    let staging = crate::output::Staging::new(out, false)?;
    let (reg, _manifest, blobs) = open_release(reference, &digest, conn, false)?;
    let mut names: BTreeSet<Title> = blobs.iter().map(|b| b.title.clone()).collect();

    let mut envelopes = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in reg.referrers(&digest)? {
        let ours = entry
            .artifact_type
            .as_deref()
            .and_then(EnvelopeKind::from_artifact_type)
            .is_some();
        if !ours || !seen.insert(entry.digest.clone()) {
            continue;
        }
        let rdigest: OciDigest = entry.digest.parse()?;
        let rbytes = reg.get_manifest(&rdigest)?;
        let (_, blob) = layout::parse_referrer(&rbytes, &rdigest, &digest)?;
        if !names.insert(blob.title.clone()) {
            return Err(LayoutError::DuplicateTitle {
                manifest: rdigest.to_string(),
                name: blob.title.to_string(),
            }
            .into());
        }
        envelopes.push((rdigest, blob));
    }

    let mut received = 0u64;
    let mut files = Vec::new();
    for b in &blobs {
        progress(&format!("fetching {} ({} bytes)", b.title, b.size));
        let dest = staging.path().join(b.title.as_str());
        reg.download(b.title.as_str(), &b.digest, b.size, &dest)?;
        set_mode(&dest, FileKind::mode_for_media_type(&b.media_type))?;
        received += b.size;
        files.push(FileReport {
            name: b.title.to_string(),
            size: b.size,
            digest: b.digest.to_string(),
            uploaded: false,
        });
    }
    let mut attachments = Vec::new();
    for (rdigest, b) in &envelopes {
        progress(&format!("fetching {}", b.title));
        let dest = staging.path().join(b.title.as_str());
        reg.download(b.title.as_str(), &b.digest, b.size, &dest)?;
        set_mode(&dest, 0o644)?;
        received += b.size;
        attachments.push(FileReport {
            name: b.title.to_string(),
            size: b.size,
            digest: rdigest.to_string(),
            uploaded: false,
        });
    }
    staging.commit()?;
    Ok(Report {
        schema: "enclave-builder.pull.v1",
        reference: reference.to_string(),
        digest: digest.to_string(),
        files,
        attachments,
        bytes_transferred: received,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), PublishError> {
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        PublishError::Io {
            action: "setting the mode of",
            path: path.to_owned(),
            source,
        }
    })
}

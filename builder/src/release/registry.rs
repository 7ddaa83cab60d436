//! The registry client: the only module that touches the network.
//!
//! A thin, blocking facade over `oci-client` (OCI distribution spec; reqwest + rustls with the
//! ring provider): each call runs on a current-thread tokio runtime that lives as long as the
//! [`Registry`] value, i.e. only inside `push`/`pull`. Blobs stream in both directions: an
//! upload reads its file in 4 MiB pieces (one chunked-upload PATCH each) and hashes them as
//! they go; a download is hashed and size-checked as it is written, so a multi-GB disk is never
//! held in memory. Plain HTTP is used only for loopback registries (or with `insecure_http`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::auth::Credentials;
use super::layout::{Descriptor, OciDigest, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use super::reference::ImageRef;

/// Size of one upload piece (and one PATCH request).
const UPLOAD_PIECE: usize = 4 * 1024 * 1024;

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// HTTP 401/403: the credentials are missing or wrong.
    #[error("registry {registry} refused the request ({action}) with HTTP {status}: it does not accept {credentials}; log in with `podman login {registry}` (or skopeo, docker), or point REGISTRY_AUTH_FILE at an auth.json with an entry for {registry}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// What was being done.
        action: String,
        /// 401 or 403.
        status: u16,
        /// Which credentials were sent (user and file; never the password).
        credentials: String,
    },
    /// The manifest does not exist.
    #[error("{reference} does not exist in the registry (manifest unknown); check the repository and the digest (`push` prints it as its last line)")]
    ManifestNotFound {
        /// The reference.
        reference: String,
    },
    /// A blob's bytes do not hash to its digest.
    #[error("blob {digest} ({title}): the registry sent bytes whose sha256 is {actual}; refusing them (corrupted in the registry or in transit)")]
    BlobDigest {
        /// The file name.
        title: String,
        /// The expected digest.
        digest: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A blob of another size than its descriptor says.
    #[error(
        "blob {digest} ({title}): the registry sent {actual} bytes, its descriptor says {expected}"
    )]
    BlobSize {
        /// The file name.
        title: String,
        /// The digest.
        digest: String,
        /// Declared size.
        expected: u64,
        /// Bytes received (so far, when too many).
        actual: u64,
    },
    /// A manifest's bytes do not hash to the digest asked for.
    #[error(
        "manifest {reference}: the registry sent bytes whose sha256 is {actual}; refusing them"
    )]
    ManifestDigest {
        /// The reference.
        reference: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A file changed between hashing and uploading.
    #[error("{path} changed while it was being pushed (its sha256 was {expected}, the bytes sent hash to {actual}); push again")]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// The digest from the first read.
        expected: String,
        /// The digest of what was sent.
        actual: String,
    },
    /// Any other registry or network failure.
    #[error("{action} at {registry}: {source}")]
    Transfer {
        /// The registry.
        registry: String,
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: OciDistributionError,
    },
    /// A local file could not be read or written.
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
    /// The async runtime could not start.
    #[error("starting the network runtime")]
    Runtime(#[source] std::io::Error),
}

/// A connection to one repository of one registry.
pub struct Registry {
    client: Client,
    rt: tokio::runtime::Runtime,
    auth: RegistryAuth,
    credentials: Credentials,
    base: ImageRef,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base.to_string())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// The HTTP status an error carries, if any.
fn status_of(e: &OciDistributionError) -> Option<u16> {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::RequestError(r) => r.status().map(|s| s.as_u16()),
        OciDistributionError::ImageManifestNotFoundError(_) => Some(404),
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|x| match x.code {
                OciErrorCode::Unauthorized => Some(401),
                OciErrorCode::Denied => Some(403),
                OciErrorCode::ManifestUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::NotFound
                | OciErrorCode::BlobUnknown => Some(404),
                _ => None,
            })
        }
        _ => None,
    }
}

fn reference(r: &ImageRef) -> Reference {
    match (&r.digest, &r.tag) {
        (Some(d), _) => {
            Reference::with_digest(r.registry.clone(), r.repository.clone(), d.to_string())
        }
        (None, Some(t)) => Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone()),
        (None, None) => Reference::with_tag(
            r.registry.clone(),
            r.repository.clone(),
            "latest".to_owned(),
        ),
    }
}

impl Registry {
    /// Prepares a client for `base`'s repository (no request is sent yet).
    pub fn connect(
        base: &ImageRef,
        credentials: Credentials,
        insecure_http: bool,
    ) -> Result<Registry, RegistryError> {
        // The process-wide TLS provider; a second call (already installed) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if insecure_http {
            ClientProtocol::Http
        } else if base.is_loopback() {
            ClientProtocol::HttpsExcept(vec![base.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(300)),
            ..ClientConfig::default()
        };
        let client = Client::new(config);
        let auth = match &credentials {
            Credentials::Anonymous { .. } => RegistryAuth::Anonymous,
            Credentials::Basic {
                username, password, ..
            } => RegistryAuth::Basic(username.clone(), password.clone()),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RegistryError::Runtime)?;
        Ok(Registry {
            client,
            rt,
            auth,
            credentials,
            base: base.clone(),
        })
    }

    fn fail(
        &self,
        action: String,
        source: OciDistributionError,
        target: &ImageRef,
    ) -> RegistryError {
        match status_of(&source) {
            Some(status @ (401 | 403)) => RegistryError::Unauthorized {
                registry: self.base.registry.clone(),
                action,
                status,
                credentials: self.credentials.describe(),
            },
            Some(404) if target.digest.is_some() || target.tag.is_some() => {
                RegistryError::ManifestNotFound {
                    reference: target.to_string(),
                }
            }
            _ => RegistryError::Transfer {
                registry: self.base.registry.clone(),
                action,
                source,
            },
        }
    }

    /// The repository (no tag, no digest).
    pub fn repository(&self) -> ImageRef {
        ImageRef {
            tag: None,
            digest: None,
            ..self.base.clone()
        }
    }

    /// Authenticates (basic credentials, exchanged for a bearer token where the registry asks).
    pub fn login(&self, push: bool) -> Result<(), RegistryError> {
        let op = if push {
            RegistryOperation::Push
        } else {
            RegistryOperation::Pull
        };
        let r = reference(&self.base);
        self.rt
            .block_on(self.client.auth(&r, &self.auth, op))
            .map(|_| ())
            .map_err(|e| self.fail("authenticating".to_owned(), e, &self.base))
    }

    /// Whether the repository has the blob (`HEAD /v2/<name>/blobs/<digest>`).
    pub fn has_blob(&self, digest: &OciDigest) -> Result<bool, RegistryError> {
        let r = reference(&self.base);
        self.rt
            .block_on(self.client.blob_exists(&r, &digest.to_string()))
            .map_err(|e| self.fail(format!("checking for blob {digest}"), e, &self.base))
    }

    /// Uploads `bytes` as the blob `digest` (small blobs: configs, manifests' blobs).
    pub fn upload_bytes(&self, bytes: &[u8], digest: &OciDigest) -> Result<(), RegistryError> {
        let r = reference(&self.base);
        self.rt
            .block_on(
                self.client
                    .push_blob(&r, bytes.to_vec(), &digest.to_string()),
            )
            .map(|_| ())
            .map_err(|e| self.fail(format!("uploading blob {digest}"), e, &self.base))
    }

    /// Streams the file at `path` to the registry as the blob `digest` (chunked upload, 4 MiB
    /// per request), hashing what it sends; a file whose bytes no longer hash to `digest` is
    /// an error before the upload is committed.
    pub fn upload_file(
        &self,
        path: &Path,
        digest: &OciDigest,
        size: u64,
    ) -> Result<(), RegistryError> {
        let r = reference(&self.base);
        let io = |action, source| RegistryError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let result: Result<(), RegistryError> = self.rt.block_on(async {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| io("opening", e))?;
            let expected = digest.to_string();
            // Each piece is hashed as it is read; at the end of the file the hash is compared
            // with the digest, and a mismatch ends the stream with an error, so the upload is
            // never committed (the final PUT is not sent).
            let state = (file, Some(Sha256::new()));
            let pieces = futures_util::stream::try_unfold(state, move |(mut file, hasher)| {
                let expected = expected.clone();
                async move {
                    let Some(mut hasher) = hasher else {
                        return Ok(None);
                    };
                    let mut buf = Vec::with_capacity(UPLOAD_PIECE);
                    while buf.len() < UPLOAD_PIECE {
                        let n = (&mut file)
                            .take((UPLOAD_PIECE - buf.len()) as u64)
                            .read_to_end(&mut buf)
                            .await
                            .map_err(OciDistributionError::IoError)?;
                        if n == 0 {
                            break;
                        }
                    }
                    hasher.update(&buf);
                    if buf.len() < UPLOAD_PIECE {
                        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
                        if actual != expected {
                            return Err(OciDistributionError::DigestError(
                                DigestError::VerificationError { expected, actual },
                            ));
                        }
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        return Ok(Some((bytes::Bytes::from(buf), (file, None))));
                    }
                    Ok(Some((bytes::Bytes::from(buf), (file, Some(hasher)))))
                }
            });
            self.client
                .push_blob_stream(&r, pieces, &digest.to_string(), Some(size))
                .await
                .map(|_| ())
                .map_err(|e| match e {
                    OciDistributionError::DigestError(DigestError::VerificationError {
                        expected,
                        actual,
                    }) => RegistryError::FileChanged {
                        path: path.to_owned(),
                        expected,
                        actual,
                    },
                    e => self.fail(format!("uploading {}", path.display()), e, &self.base),
                })
        });
        result
    }

    /// Stores a manifest under `target` (a tag or its digest).
    pub fn put_manifest(
        &self,
        target: &ImageRef,
        bytes: &[u8],
        media_type: &'static str,
    ) -> Result<(), RegistryError> {
        let r = reference(target);
        self.rt
            .block_on(self.client.push_manifest_raw(
                &r,
                bytes.to_vec(),
                http::HeaderValue::from_static(media_type),
            ))
            .map(|_| ())
            .map_err(|e| {
                self.fail(
                    format!("storing manifest {target}"),
                    e,
                    &ImageRef {
                        tag: None,
                        digest: None,
                        ..target.clone()
                    },
                )
            })
    }

    /// Fetches the manifest `digest` and checks its bytes hash to it.
    pub fn get_manifest(&self, digest: &OciDigest) -> Result<Vec<u8>, RegistryError> {
        let target = self.base.at(*digest);
        let r = reference(&target);
        let (bytes, _) = self
            .rt
            .block_on(self.client.pull_manifest_raw(
                &r,
                &self.auth,
                &[MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE],
            ))
            .map_err(|e| match e {
                OciDistributionError::DigestError(DigestError::VerificationError {
                    actual,
                    ..
                }) => RegistryError::ManifestDigest {
                    reference: target.to_string(),
                    actual,
                },
                e => self.fail(format!("fetching manifest {digest}"), e, &target),
            })?;
        let actual = OciDigest::of(&bytes);
        if actual != *digest {
            return Err(RegistryError::ManifestDigest {
                reference: target.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes.to_vec())
    }

    /// Fetches the manifest or index under `tag`, or `None` if the tag does not exist.
    pub fn get_tag(&self, tag: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let target = self.base.tagged(tag);
        let r = reference(&target);
        match self.rt.block_on(self.client.pull_manifest_raw(
            &r,
            &self.auth,
            &[INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE],
        )) {
            Ok((bytes, _)) => Ok(Some(bytes.to_vec())),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.fail(format!("fetching tag {tag}"), e, &target)),
        }
    }

    /// The manifests referring to `subject`: the referrers API, or the tag-schema index
    /// (`sha256-<hex>`) where the registry lacks it.
    pub fn referrers(&self, subject: &OciDigest) -> Result<Vec<Descriptor>, RegistryError> {
        let target = self.base.at(*subject);
        let r = reference(&target);
        let index = self
            .rt
            .block_on(self.client.pull_referrers(&r, None))
            .map_err(|e| self.fail(format!("listing referrers of {subject}"), e, &target))?;
        Ok(index
            .manifests
            .into_iter()
            .map(|m| Descriptor {
                media_type: m.media_type,
                digest: m.digest,
                size: u64::try_from(m.size).unwrap_or(0),
                artifact_type: m.artifact_type,
                annotations: m.annotations,
            })
            .collect())
    }

    /// Streams the blob `digest` of `expected` bytes into the new file `dest`, hashing and
    /// counting as it writes; stops at the first byte past `expected`.
    pub fn download(
        &self,
        title: &str,
        digest: &OciDigest,
        expected: u64,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        let r = reference(&self.base);
        let io = |action, source| RegistryError::Io {
            action,
            path: dest.to_owned(),
            source,
        };
        let mut out = fs_err::File::create_new(dest).map_err(|e| io("creating", e))?;
        let mut hasher = Sha256::new();
        let mut got: u64 = 0;
        let digest_s = digest.to_string();
        let size_err = |actual| RegistryError::BlobSize {
            title: title.to_owned(),
            digest: digest_s.clone(),
            expected,
            actual,
        };
        let mismatch = |h: Sha256| RegistryError::BlobDigest {
            title: title.to_owned(),
            digest: digest_s.clone(),
            actual: format!("sha256:{}", hex::encode(h.finalize())),
        };
        self.rt.block_on(async {
            let mut stream = self
                .client
                .pull_blob_stream(&r, digest_s.as_str())
                .await
                .map_err(|e| {
                    self.fail(format!("fetching blob {digest} ({title})"), e, &self.base)
                })?;
            while let Some(piece) = stream.next().await {
                let piece = match piece {
                    Ok(p) => p,
                    // The client's own check failed at the end of the stream: report ours.
                    Err(_)
                        if got == expected && OciDigest::from_hasher(hasher.clone()) != *digest =>
                    {
                        return Err(mismatch(hasher));
                    }
                    Err(e) => {
                        return Err(self.fail(
                            format!("fetching blob {digest} ({title})"),
                            OciDistributionError::IoError(e),
                            &self.base,
                        ))
                    }
                };
                got = got.saturating_add(piece.len() as u64);
                if got > expected {
                    return Err(size_err(got));
                }
                hasher.update(&piece);
                // Blocking write on the runtime's only thread: nothing else runs meanwhile.
                out.write_all(&piece).map_err(|e| io("writing", e))?;
            }
            if got != expected {
                return Err(size_err(got));
            }
            if OciDigest::from_hasher(hasher.clone()) != *digest {
                return Err(mismatch(hasher));
            }
            out.sync_all().map_err(|e| io("syncing", e))?;
            Ok(())
        })
    }
}

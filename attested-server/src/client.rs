//! The client's side of the session binding: connect with TLS, note the server's key, fetch
//! evidence for a fresh nonce, check it against a release with the `verifier` crate, check
//! that it binds the key this connection saw, and only then send the real request, over a
//! connection that must present that same key.
//!
//! The TLS certificate is not checked against any PKI (the server made it at start): the
//! handshake signature is verified with the certificate's key as usual, and that key is
//! trusted only once the evidence binds it ([`verifier::binding::report_data`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use measurements::record::{PlatformMeasurement, Record};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use verifier::snp::{SnpEvidence, SnpPolicy, SnpRelease, TrustAnchors};
use verifier::tpm::{TpmEvidence, TpmRelease};
use verifier::Verdict;

use crate::evidence::Platform;
use crate::server::AttestationDoc;
use crate::vtpm::TPM_SIGNATURE;

/// The largest response body the client reads.
pub const MAX_RESPONSE: usize = 64 << 20;
/// How long one request may take, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the client refused the server or could not talk to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The evidence did not pass; the verdict names each failed check.
    #[error("refused: the evidence failed {}", failed_checks(.0))]
    Refused(Verdict),
    /// The server presented another key than the one the evidence bound.
    #[error("refused: tls.server_key: the server presented another key than the attested one")]
    KeyChanged,
    /// The release's record has no usable profile for this evidence.
    #[error("release: {0}")]
    Release(String),
    /// The attestation endpoint's answer is not an attestation document.
    #[error("attestation endpoint: {0}")]
    BadDocument(String),
    /// Evidence of a kind this client cannot check yet.
    #[error("evidence of platform {0:?} cannot be checked by this client yet")]
    Unsupported(Platform),
    /// The connection, the TLS handshake or the HTTP exchange failed.
    #[error("talking to {addr}: {message}")]
    Transport {
        /// The server's address.
        addr: String,
        /// What went wrong.
        message: String,
    },
}

fn failed_checks(v: &Verdict) -> String {
    let failed: Vec<String> = v
        .failures()
        .map(|c| format!("{} (expected {}, got {})", c.name, c.expected, c.actual))
        .collect();
    if failed.is_empty() {
        "no check (an empty verdict)".to_owned()
    } else {
        failed.join("; ")
    }
}

/// What the client holds the server to: the release (its `record.json`) and the policy.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// The release's record.
    pub record: Record,
    /// The record's profile to compare with, among those of the evidence's platform
    /// (default: the record's only one of that platform).
    pub profile: Option<String>,
    /// The roots the VCEK must chain to ([`TrustAnchors::amd`] in production).
    pub anchors: TrustAnchors,
    /// Guest policy, TCB and VMPL requirements.
    pub policy: SnpPolicy,
    /// The VCEK (DER or PEM) when the server does not send one.
    pub vcek: Option<Vec<u8>>,
    /// vTPM: the attestation key the client trusts (SubjectPublicKeyInfo, DER or PEM), from a
    /// source it trusts (an EK certificate chain, the cloud provider's API, a key pinned when
    /// the VM was provisioned). The AK a server sends (`tpm-ak`) is never used: without this,
    /// vTPM evidence is refused.
    pub tpm_ak: Option<Vec<u8>>,
}

/// An attested server: its key (SubjectPublicKeyInfo DER) and the verdict that admitted it.
#[derive(Debug, Clone)]
pub struct Attested {
    /// The key the evidence binds, as the TLS handshake presented it.
    pub spki_der: Vec<u8>,
    /// Every check, all passed.
    pub verdict: Verdict,
}

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Fetches evidence for `nonce` from `addr` and checks it; `Ok` only if every check passed,
/// the binding included.
pub async fn attest(
    addr: &str,
    expect: &Expectation,
    nonce: &[u8],
) -> Result<Attested, ClientError> {
    let path = format!("/v1/attestation?nonce={}", hex::encode(nonce));
    let (spki, reply) = request(addr, None, get(&path)).await?;
    if reply.status != 200 {
        return Err(ClientError::BadDocument(format!(
            "status {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )));
    }
    let doc: AttestationDoc = serde_json::from_slice(&reply.body)
        .map_err(|e| ClientError::BadDocument(format!("not an attestation document: {e}")))?;
    let verdict = check_document(&doc, &spki, nonce, expect)?;
    if !verdict.passed() {
        return Err(ClientError::Refused(verdict));
    }
    Ok(Attested {
        spki_der: spki,
        verdict,
    })
}

/// [`attest`], then `req` over a connection that must present the attested key.
pub async fn attested_request(
    addr: &str,
    expect: &Expectation,
    nonce: &[u8],
    req: Request<Full<Bytes>>,
) -> Result<(Attested, Reply), ClientError> {
    let attested = attest(addr, expect, nonce).await?;
    let (_, reply) = request(addr, Some(&attested.spki_der), req).await?;
    Ok((attested, reply))
}

/// Checks an attestation document against the expectation and the binding of `spki_der`
/// (the key the TLS handshake presented) and `nonce` (the one the client sent).
pub fn check_document(
    doc: &AttestationDoc,
    spki_der: &[u8],
    nonce: &[u8],
    expect: &Expectation,
) -> Result<Verdict, ClientError> {
    use base64::Engine as _;
    let b64 = |what: &str, s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| ClientError::BadDocument(format!("{what} is not base64: {e}")))
    };
    let evidence = b64("evidence", &doc.evidence)?;
    let binding = verifier::binding::report_data(spki_der, nonce);
    match doc.platform {
        Platform::SevSnp => {
            let release = snp_release(&expect.record, expect.profile.as_deref())?;
            let vcek = match (&expect.vcek, doc.certificates.get("vcek")) {
                (Some(v), _) => v.clone(),
                (None, Some(v)) => b64("certificates.vcek", v)?,
                (None, None) => {
                    return Err(ClientError::BadDocument(
                        "no VCEK: the server sent none; pass the chip's VCEK".to_owned(),
                    ))
                }
            };
            let ev = SnpEvidence {
                report: &evidence,
                vcek: &vcek,
                ark: None,
                ask: None,
            };
            Ok(verifier::snp::verify(
                &ev,
                &expect.anchors,
                &release,
                &expect.policy,
                &binding,
            ))
        }
        Platform::Tpm => {
            let release = tpm_release(&expect.record, expect.profile.as_deref())?;
            let ak = expect.tpm_ak.as_deref().ok_or_else(|| {
                ClientError::Release(
                    "vTPM evidence needs the attestation key the client trusts (tpm_ak)".to_owned(),
                )
            })?;
            let signature = match doc.certificates.get(TPM_SIGNATURE) {
                Some(s) => b64("certificates.tpm-signature", s)?,
                None => {
                    return Err(ClientError::BadDocument(
                        "vTPM evidence without its signature (certificates.tpm-signature)"
                            .to_owned(),
                    ))
                }
            };
            let ev = TpmEvidence {
                attest: &evidence,
                signature: &signature,
                ak,
            };
            Ok(verifier::tpm::verify(
                &ev,
                &release,
                &verifier::binding::tpm_qualifying_data(&binding),
            ))
        }
        other => Err(ClientError::Unsupported(other)),
    }
}

/// The record's SEV-SNP launch digest for `profile` (default: its only SNP profile).
pub fn snp_release(record: &Record, profile: Option<&str>) -> Result<SnpRelease, ClientError> {
    let snp = record
        .measurements
        .iter()
        .filter_map(|m| match &m.platform {
            PlatformMeasurement::Snp { launch_digest, .. } => Some(SnpRelease {
                profile: m.profile.clone(),
                launch_digest: launch_digest.0,
            }),
            _ => None,
        });
    choose(
        snp.map(|r| (r.profile.clone(), r)).collect(),
        profile,
        "SEV-SNP",
    )
}

/// The record's vTPM PCR 4 and PCR 11 for `profile` (default: its only vTPM profile).
pub fn tpm_release(record: &Record, profile: Option<&str>) -> Result<TpmRelease, ClientError> {
    let tpm = record
        .measurements
        .iter()
        .filter_map(|m| match &m.platform {
            PlatformMeasurement::Vtpm { pcr4, pcr11, .. } => Some(TpmRelease {
                profile: m.profile.clone(),
                pcr4: pcr4.0,
                pcr11: pcr11.0,
                other: Default::default(),
            }),
            _ => None,
        });
    choose(
        tpm.map(|r| (r.profile.clone(), r)).collect(),
        profile,
        "vTPM",
    )
}

/// The release named `profile` among `all` (one platform's), or the only one.
fn choose<T: Clone>(
    all: Vec<(String, T)>,
    profile: Option<&str>,
    platform: &str,
) -> Result<T, ClientError> {
    let names = all
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match (profile, all.as_slice()) {
        (Some(p), _) => all
            .iter()
            .find(|(n, _)| n == p)
            .map(|(_, r)| r.clone())
            .ok_or_else(|| {
                ClientError::Release(format!(
                    "no {platform} profile {p:?} ({platform} profiles: {names})"
                ))
            }),
        (None, [(_, one)]) => Ok(one.clone()),
        (None, []) => Err(ClientError::Release(format!("no {platform} profile"))),
        (None, _) => Err(ClientError::Release(format!(
            "several {platform} profiles ({names}); choose one"
        ))),
    }
}

/// A `GET` request for `path`.
pub fn get(path: &str) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = path.parse().unwrap_or_default();
    req
}

/// A `POST` of a JSON body to `path`.
pub fn post_json(path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = path.parse().unwrap_or_default();
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    req
}

/// One request over a fresh TLS connection to `addr`. With `pin`, the server must present
/// that key (SubjectPublicKeyInfo DER), or the handshake fails; without, whatever key it
/// presents is returned for the caller to check. The handshake signature is verified either
/// way.
pub async fn request(
    addr: &str,
    pin: Option<&[u8]>,
    mut req: Request<Full<Bytes>>,
) -> Result<(Vec<u8>, Reply), ClientError> {
    let transport = |message: String| ClientError::Transport {
        addr: addr.to_owned(),
        message,
    };
    let recorder = Arc::new(KeyRecorder {
        pin: pin.map(<[u8]>::to_vec),
        seen: Mutex::new(None),
        algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| transport(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&recorder) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // The name is not checked (the key is); it is only sent as SNI.
    let name = ServerName::try_from("localhost").map_err(|e| transport(format!("{e}")))?;

    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| transport(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tls = match connector.connect(name, tcp).await {
            Ok(t) => t,
            Err(_) if recorder.mismatched() => return Err(ClientError::KeyChanged),
            Err(e) => return Err(transport(format!("TLS handshake: {e}"))),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| transport(format!("HTTP handshake: {e}")))?;
        tokio::spawn(conn);
        let headers = req.headers_mut();
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| transport(format!("request: {e}")))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| transport(format!("response body: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(Reply { status, body })
    };
    let reply = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| transport(format!("no answer within {REQUEST_TIMEOUT:?}")))??;
    let spki = recorder
        .take()
        .ok_or_else(|| transport("the server presented no certificate".to_owned()))?;
    Ok((spki, reply))
}

/// Accepts any server certificate whose key parses, remembers that key, and, when pinned,
/// refuses any other key. Handshake signatures are verified with rustls' own functions.
#[derive(Debug)]
struct KeyRecorder {
    pin: Option<Vec<u8>>,
    seen: Mutex<Option<Vec<u8>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl KeyRecorder {
    fn take(&self) -> Option<Vec<u8>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn mismatched(&self) -> bool {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        matches!((&self.pin, &*seen), (Some(p), Some(s)) if p != s)
    }
}

impl ServerCertVerifier for KeyRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let spki = verifier::binding::server_key_der(end_entity).ok_or(
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding),
        )?;
        let refused = self.pin.as_ref().is_some_and(|p| *p != spki);
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(spki);
        if refused {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

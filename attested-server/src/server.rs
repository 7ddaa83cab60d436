//! HTTP/1.1 over TLS on hyper and tokio: the routes this crate answers itself
//! (`GET /healthz`, `GET /v1/attestation?nonce=HEX`) and an [`App`] for the rest.
//!
//! Bounds, so that slow or hostile clients cannot starve good ones:
//! - at most [`Limits::max_connections`] connections at once; past that, new connections wait
//!   in the kernel's accept queue (they are not refused);
//! - the TLS handshake must finish within [`Limits::handshake_timeout`], the request line and
//!   headers must arrive within [`Limits::header_timeout`] (hyper's header read timeout) and
//!   the body within [`Limits::body_timeout`]; the whole connection may last
//!   [`Limits::connection_timeout`];
//! - request line + headers at most [`Limits::max_head`] bytes (431), body at most
//!   [`Limits::max_body`] bytes (413, from `Content-Length` when there is one); malformed heads
//!   get 400 (hyper's parser); `POST` without a length gets 411;
//! - one request per connection (`Connection: close`); each connection is its own task, so a
//!   stalled client holds a few kilobytes, never a thread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;

use crate::evidence::{Evidence, EvidenceSource, Platform};
use crate::tls::{TlsError, TlsIdentity};

/// The size, time and concurrency bounds of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers, bytes (hyper enforces at least 8192).
    pub max_head: usize,
    /// Request body, bytes.
    pub max_body: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for the request line and headers, from the end of the handshake.
    pub header_timeout: Duration,
    /// Time for the request body.
    pub body_timeout: Duration,
    /// Time for the whole connection, handshake to last byte of the response.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    /// 16 KiB head, 1 MiB body, 256 connections, 10 s handshake, 10 s head, 30 s body,
    /// 300 s connection.
    fn default() -> Self {
        Self {
            max_head: 16 << 10,
            max_body: 1 << 20,
            max_connections: 256,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            connection_timeout: Duration::from_secs(300),
        }
    }
}

/// The nonce lengths the attestation endpoint accepts, in bytes.
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// The application behind the server: every route this crate does not answer itself.
pub trait App: Send + Sync + 'static {
    /// Answers one request whose body has been read in full. Runs on a blocking thread, so it
    /// may compute for a while.
    fn handle(&self, method: &Method, path: &str, body: &[u8]) -> Reply;
}

/// A response body and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// `value` as JSON (500 if it does not serialize).
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status,
                content_type: "application/json",
                body,
            },
            Err(_) => Self::error(500, "could not serialize the response"),
        }
    }

    /// An OpenAI-style error object: `{"error":{"message":...,"type":...}}`.
    pub fn error(status: u16, message: &str) -> Self {
        let kind = if status < 500 {
            "invalid_request_error"
        } else {
            "server_error"
        };
        let body = serde_json::json!({ "error": { "message": message, "type": kind } });
        Self {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(self.content_type),
        );
        response
    }
}

/// The JSON document `GET /v1/attestation` answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AttestationDoc {
    /// `sev-snp`, `tdx` or `tpm`.
    pub platform: Platform,
    /// The client's nonce, hex, as received.
    pub nonce: String,
    /// The report or quote, standard base64.
    pub evidence: String,
    /// Certificates by name (`vcek`, `ask`, `ark`, `vlek`), DER in standard base64.
    #[serde(default)]
    pub certificates: std::collections::BTreeMap<String, String>,
}

impl AttestationDoc {
    fn new(nonce: &[u8], ev: &Evidence) -> Self {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Self {
            platform: ev.platform,
            nonce: hex::encode(nonce),
            evidence: b64(&ev.evidence),
            certificates: ev
                .certificates
                .iter()
                .map(|(k, v)| (k.clone(), b64(v)))
                .collect(),
        }
    }
}

/// Why the server stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The tokio runtime could not be started, or the listener not registered with it.
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    /// `accept` failed in a way that retrying will not fix.
    #[error("accepting a connection on {addr}")]
    Accept {
        /// The listening address.
        addr: String,
        /// The operating system's complaint.
        #[source]
        source: std::io::Error,
    },
}

/// Everything a connection needs.
struct Shared {
    app: Arc<dyn App>,
    evidence: Arc<dyn EvidenceSource>,
    spki: Vec<u8>,
    limits: Limits,
}

/// A server ready to accept: TLS identity, evidence source, application, bounds.
pub struct Server {
    shared: Arc<Shared>,
    tls: tokio_rustls::TlsAcceptor,
}

impl Server {
    /// A server presenting `identity`, attesting with `evidence`, answering with `app`.
    pub fn new(
        identity: &TlsIdentity,
        evidence: Arc<dyn EvidenceSource>,
        app: Arc<dyn App>,
        limits: Limits,
    ) -> Result<Self, ServeError> {
        Ok(Self {
            shared: Arc::new(Shared {
                app,
                evidence,
                spki: identity.spki_der().to_vec(),
                limits,
            }),
            tls: tokio_rustls::TlsAcceptor::from(identity.server_config()?),
        })
    }

    /// Serves on `listener` until `accept` fails for good, on a tokio runtime of its own
    /// (`workers` threads).
    pub fn serve_blocking(
        self,
        listener: std::net::TcpListener,
        workers: usize,
    ) -> Result<(), ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_io()
            .enable_time()
            .build()
            .map_err(ServeError::Runtime)?;
        runtime.block_on(async move {
            listener
                .set_nonblocking(true)
                .map_err(ServeError::Runtime)?;
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(ServeError::Runtime)?;
            self.serve(listener).await
        })
    }

    /// Serves on `listener` until `accept` fails for good.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<(), ServeError> {
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.shared.limits.max_connections.max(1),
        ));
        loop {
            // Waiting here leaves further connections in the kernel's accept queue.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                // Only a closed semaphore fails, and this one is never closed.
                continue;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) if transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(source) => {
                    return Err(ServeError::Accept {
                        addr: listener
                            .local_addr()
                            .map_or_else(|_| "?".to_owned(), |a| a.to_string()),
                        source,
                    })
                }
            };
            let shared = Arc::clone(&self.shared);
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let limits = shared.limits.clone();
                let _ = tokio::time::timeout(
                    limits.connection_timeout,
                    connection(shared, tls, stream, peer),
                )
                .await;
                drop(slot);
            });
        }
    }
}

/// Errors from `accept` that a later `accept` may not see: a client that gave up between SYN
/// and accept, an interrupted call, a momentary shortage of file descriptors (EMFILE, ENFILE).
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
    ) || e.raw_os_error().is_some_and(|n| n == 24 || n == 23)
}

async fn connection(
    shared: Arc<Shared>,
    tls: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    _peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let limits = &shared.limits;
    let Ok(Ok(stream)) = tokio::time::timeout(limits.handshake_timeout, tls.accept(stream)).await
    else {
        return;
    };
    let service = {
        let shared = Arc::clone(&shared);
        hyper::service::service_fn(move |req| route(Arc::clone(&shared), req))
    };
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_head.max(8192))
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let reply = match (path.as_str(), req.method()) {
        ("/healthz", &Method::GET | &Method::HEAD) => Reply {
            status: 200,
            content_type: "text/plain",
            body: b"ok\n".to_vec(),
        },
        ("/v1/attestation", &Method::GET) => attestation(&shared, req.uri().query()).await,
        ("/healthz" | "/v1/attestation", _) => Reply::error(405, "method not allowed"),
        _ => match read_body(&shared.limits, req).await {
            Err(reply) => reply,
            Ok((method, body)) => {
                let app = Arc::clone(&shared.app);
                tokio::task::spawn_blocking(move || app.handle(&method, &path, &body))
                    .await
                    .unwrap_or_else(|_| Reply::error(500, "the handler panicked"))
            }
        },
    };
    Ok(reply.into_response())
}

/// Reads the body within the size and time bounds.
async fn read_body(limits: &Limits, req: Request<Incoming>) -> Result<(Method, Bytes), Reply> {
    let headers = req.headers();
    let chunked = headers.contains_key(http::header::TRANSFER_ENCODING);
    let length = match headers.get(http::header::CONTENT_LENGTH) {
        None => None,
        // hyper has already refused malformed and conflicting lengths with 400.
        Some(v) => v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()),
    };
    let method = req.method().clone();
    if method == Method::POST && length.is_none() && !chunked {
        return Err(Reply::error(411, "POST needs Content-Length"));
    }
    let max = limits.max_body;
    if let Some(n) = length.filter(|&n| n > max as u64) {
        // Refused from the header; what the client still sends is read and dropped (bounded)
        // so that closing does not reset the connection before the client reads the answer.
        let mut body = req.into_body();
        let drain = async {
            let mut seen = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if seen > 2 * max as u64 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        return Err(Reply::error(
            413,
            &format!("request body of {n} bytes exceeds the limit of {max}"),
        ));
    }
    let collected = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(req.into_body(), max).collect(),
    )
    .await;
    match collected {
        Err(_) => Err(Reply::error(408, "the request body did not arrive in time")),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Reply::error(
            413,
            &format!("request body exceeds the limit of {max} bytes"),
        )),
        Ok(Err(_)) => Err(Reply::error(400, "could not read the request body")),
        Ok(Ok(body)) => Ok((method, body.to_bytes())),
    }
}

/// `GET /v1/attestation?nonce=HEX`: evidence bound to this server's key and the nonce.
async fn attestation(shared: &Arc<Shared>, query: Option<&str>) -> Reply {
    let nonce = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("nonce="));
    let Some(nonce) = nonce else {
        return Reply::error(400, "missing ?nonce=HEX (16 to 64 random bytes)");
    };
    let nonce = match hex::decode(nonce) {
        Ok(n) if NONCE_LEN.contains(&n.len()) => n,
        _ => return Reply::error(400, "nonce must be 16 to 64 bytes, hex"),
    };
    let binding = verifier::binding::report_data(&shared.spki, &nonce);
    let source = Arc::clone(&shared.evidence);
    match tokio::task::spawn_blocking(move || source.evidence(&binding)).await {
        Ok(Ok(ev)) => Reply::json(200, &AttestationDoc::new(&nonce, &ev)),
        Ok(Err(e)) => Reply::error(503, &error_chain(&e)),
        Err(_) => Reply::error(500, "the evidence source panicked"),
    }
}

/// `e` and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

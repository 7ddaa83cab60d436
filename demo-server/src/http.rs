//! A small blocking HTTP/1.1 server: one request per connection, bounded sizes, no panics.
//!
//! Routes: `GET /healthz` and `POST /v1/embeddings` (OpenAI's request and response shapes).
//! Every connection gets its own thread, up to [`MAX_CONNECTIONS`]; the model runs one request
//! at a time, which bounds memory on a small guest.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::embed::Embedder;

/// The largest request body accepted; larger ones get 413.
pub const MAX_BODY: usize = 1 << 20;
/// The largest request line plus headers accepted; larger ones get 431.
pub const MAX_HEAD: usize = 16 << 10;
/// The most inputs one request may carry; more get 400.
pub const MAX_INPUTS: usize = 256;
/// Connections served at once; more get 503 straight away.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may stall while sending or receiving.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The model name this server reports, whatever the request asked for.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
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

/// Serves requests on `listener` until `accept` fails for good.
pub fn serve(listener: &TcpListener, embedder: Embedder) -> Result<(), ServeError> {
    let state = Arc::new(State {
        embedder: Mutex::new(embedder),
        open: AtomicUsize::new(0),
    });
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            // A client that gave up between SYN and accept, or a transient fd shortage.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                ) || e.raw_os_error().is_some_and(|n| n == 24 || n == 23) =>
            {
                std::thread::sleep(Duration::from_millis(10));
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
        if state.open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            state.open.fetch_sub(1, Ordering::SeqCst);
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            let _ = write_response(&mut stream, &Response::error(503, "too many connections"));
            continue;
        }
        // Released when the thread ends, or when its closure is dropped because spawn failed.
        let slot = Slot(Arc::clone(&state));
        let _ = std::thread::Builder::new()
            .name("conn".to_owned())
            .spawn(move || handle_connection(&slot.0, stream));
    }
}

/// One of the [`MAX_CONNECTIONS`] places; gives it back when dropped.
struct Slot(Arc<State>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

struct State {
    embedder: Mutex<Embedder>,
    open: AtomicUsize,
}

fn handle_connection(state: &State, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let response = match read_request(&mut reader) {
        Ok(request) => route(state, &request),
        Err(response) => response,
    };
    let mut writer = write_half;
    let _ = write_response(&mut writer, &response);
    let _ = writer.flush();
    let _ = writer.shutdown(std::net::Shutdown::Write);
    // Drain what the client still sends (a rejected body) so closing does not reset the
    // connection before it has read the answer; bounded in bytes and by the read timeout.
    let _ = std::io::copy(&mut reader.take(MAX_BODY as u64 * 2), &mut std::io::sink());
}

/// A parsed request: what routing needs and nothing more.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// A response ready to be written.
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status,
                content_type: "application/json",
                body,
            },
            Err(_) => Self::error(500, "could not serialize the response"),
        }
    }

    /// An OpenAI-style error object.
    fn error(status: u16, message: &str) -> Self {
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
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

fn write_response(out: &mut impl Write, response: &Response) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(&response.body)
}

/// Reads one line of the head, counting it against the head budget.
fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> Result<String, Response> {
    let mut line = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX).saturating_add(1);
    let n = reader
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(|_| Response::error(408, "could not read the request"))?;
    if n > *budget {
        return Err(Response::error(431, "request head too large"));
    }
    *budget -= n;
    if !line.ends_with(b"\n") {
        return Err(Response::error(400, "truncated request head"));
    }
    let line =
        String::from_utf8(line).map_err(|_| Response::error(400, "request head is not UTF-8"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_request(reader: &mut impl BufRead) -> Result<Request, Response> {
    let mut budget = MAX_HEAD;
    let request_line = read_line(reader, &mut budget)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Response::error(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Response::error(400, "only HTTP/1.x is served"));
    }
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let mut content_length: Option<usize> = None;
    loop {
        let line = read_line(reader, &mut budget)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Response::error(400, "malformed header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| Response::error(400, "invalid Content-Length"))?;
            if content_length.is_some_and(|old| old != n) {
                return Err(Response::error(400, "conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Response::error(
                501,
                "Transfer-Encoding is not supported; send Content-Length",
            ));
        }
    }
    let body = match content_length {
        None | Some(0) => Vec::new(),
        Some(n) if n > MAX_BODY => {
            return Err(Response::error(
                413,
                &format!("request body of {n} bytes exceeds the limit of {MAX_BODY}"),
            ))
        }
        Some(n) => {
            let mut body = vec![0; n];
            reader
                .read_exact(&mut body)
                .map_err(|_| Response::error(400, "request body shorter than Content-Length"))?;
            body
        }
    };
    if method == "POST" && content_length.is_none() {
        return Err(Response::error(411, "POST needs Content-Length"));
    }
    Ok(Request {
        method: method.to_owned(),
        path,
        body,
    })
}

fn route(state: &State, request: &Request) -> Response {
    match (request.path.as_str(), request.method.as_str()) {
        ("/healthz", "GET" | "HEAD") => Response {
            status: 200,
            content_type: "text/plain",
            body: b"ok\n".to_vec(),
        },
        ("/v1/embeddings", "POST") => embeddings(state, &request.body),
        ("/healthz" | "/v1/embeddings", _) => Response::error(405, "method not allowed"),
        _ => Response::error(404, "no such route"),
    }
}

/// `POST /v1/embeddings`'s body.
#[derive(Deserialize)]
struct EmbeddingsRequest {
    input: Input,
    /// Accepted and ignored: this server has one model.
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Serialize)]
struct EmbeddingsResponse<'a> {
    object: &'static str,
    data: Vec<EmbeddingObject<'a>>,
    model: &'static str,
    usage: Usage,
}

#[derive(Serialize)]
struct EmbeddingObject<'a> {
    object: &'static str,
    index: usize,
    embedding: &'a [f32],
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

fn embeddings(state: &State, body: &[u8]) -> Response {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Response::error(400, &format!("invalid JSON: {e}")),
    };
    // serde would also take a struct from an array (`["a"]`); only an object is a request.
    if !value.is_object() {
        return Response::error(400, "the request body must be a JSON object");
    }
    let request = match EmbeddingsRequest::deserialize(value) {
        Ok(r) => r,
        Err(e) => {
            return Response::error(
                400,
                &format!("invalid request: `input` must be a string or an array of strings ({e})"),
            )
        }
    };
    if let Some(format) = request.encoding_format.as_deref() {
        if format != "float" {
            return Response::error(400, "only encoding_format \"float\" is supported");
        }
    }
    let inputs: Vec<String> = match request.input {
        Input::One(s) => vec![s],
        Input::Many(v) => v,
    };
    if inputs.is_empty() {
        return Response::error(400, "`input` must not be empty");
    }
    if inputs.len() > MAX_INPUTS {
        return Response::error(
            400,
            &format!("{} inputs exceed the limit of {MAX_INPUTS}", inputs.len()),
        );
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let result = match state.embedder.lock() {
        Ok(embedder) => embedder.embed(&refs),
        // A panic inside candle while another request held the lock; the model is immutable,
        // so its data is still good.
        Err(poisoned) => poisoned.into_inner().embed(&refs),
    };
    match result {
        Ok(out) => {
            let data = out
                .vectors
                .iter()
                .enumerate()
                .map(|(index, v)| EmbeddingObject {
                    object: "embedding",
                    index,
                    embedding: v,
                })
                .collect();
            Response::json(
                200,
                &EmbeddingsResponse {
                    object: "list",
                    data,
                    model: MODEL_NAME,
                    usage: Usage {
                        prompt_tokens: out.prompt_tokens,
                        total_tokens: out.prompt_tokens,
                    },
                },
            )
        }
        Err(e) => Response::error(500, &format!("{e}")),
    }
}

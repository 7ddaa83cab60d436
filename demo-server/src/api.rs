//! The embedding API behind the HTTPS front (`attested-server`): `POST /v1/embeddings` in
//! OpenAI's request and response shapes. `GET /healthz`, `GET /v1/attestation`, TLS, size and
//! time bounds are the front's; the model runs one request at a time, which bounds memory on
//! a small guest.

use std::sync::Mutex;

use attested_server::{App, Reply};
use http::Method;
use serde::{Deserialize, Serialize};

use crate::embed::Embedder;

/// The largest request body accepted; larger ones get 413.
pub const MAX_BODY: usize = 1 << 20;
/// The largest request line plus headers accepted; larger ones get 431.
pub const MAX_HEAD: usize = 16 << 10;
/// The most inputs one request may carry; more get 400.
pub const MAX_INPUTS: usize = 256;

/// The model name this server reports, whatever the request asked for.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The front's bounds for this server: [`MAX_HEAD`], [`MAX_BODY`], the rest as
/// [`attested_server::Limits::default`].
pub fn limits() -> attested_server::Limits {
    attested_server::Limits {
        max_head: MAX_HEAD,
        max_body: MAX_BODY,
        ..attested_server::Limits::default()
    }
}

/// The embedding application: one model, used by one request at a time.
pub struct EmbeddingsApp {
    embedder: Mutex<Embedder>,
}

impl EmbeddingsApp {
    /// Serves `embedder`.
    pub fn new(embedder: Embedder) -> Self {
        Self {
            embedder: Mutex::new(embedder),
        }
    }
}

impl App for EmbeddingsApp {
    fn handle(&self, method: &Method, path: &str, body: &[u8]) -> Reply {
        match (path, method) {
            ("/v1/embeddings", &Method::POST) => embeddings(&self.embedder, body),
            ("/v1/embeddings", _) => Reply::error(405, "method not allowed"),
            _ => Reply::error(404, "no such route"),
        }
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

fn embeddings(embedder: &Mutex<Embedder>, body: &[u8]) -> Reply {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Reply::error(400, &format!("invalid JSON: {e}")),
    };
    // serde would also take a struct from an array (`["a"]`); only an object is a request.
    if !value.is_object() {
        return Reply::error(400, "the request body must be a JSON object");
    }
    let request = match EmbeddingsRequest::deserialize(value) {
        Ok(r) => r,
        Err(e) => {
            return Reply::error(
                400,
                &format!("invalid request: `input` must be a string or an array of strings ({e})"),
            )
        }
    };
    if let Some(format) = request.encoding_format.as_deref() {
        if format != "float" {
            return Reply::error(400, "only encoding_format \"float\" is supported");
        }
    }
    let inputs: Vec<String> = match request.input {
        Input::One(s) => vec![s],
        Input::Many(v) => v,
    };
    if inputs.is_empty() {
        return Reply::error(400, "`input` must not be empty");
    }
    if inputs.len() > MAX_INPUTS {
        return Reply::error(
            400,
            &format!("{} inputs exceed the limit of {MAX_INPUTS}", inputs.len()),
        );
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let result = match embedder.lock() {
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
            Reply::json(
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
        Err(e) => Reply::error(500, &format!("{e}")),
    }
}

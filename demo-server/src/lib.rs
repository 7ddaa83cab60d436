//! The demo workload of the confidential-VM image: an embedding server for
//! sentence-transformers all-MiniLM-L6-v2, CPU only, f32, statically linkable.
//!
//! [`Embedder::load`] reads a model directory (`config.json`, `tokenizer.json`,
//! `model.safetensors`); [`Embedder::embed`] turns texts into unit-length 384-dimensional
//! vectors (BERT → mean pooling over the attention mask → L2 normalisation, as
//! sentence-transformers does); [`EmbeddingsApp`] answers OpenAI-style `POST /v1/embeddings`
//! behind `attested-server`'s HTTPS front, which also answers `GET /healthz` and
//! `GET /v1/attestation?nonce=HEX` (evidence bound to the TLS key made at start).
//!
//! ```
//! // Without a model directory, loading fails with an error that names the file.
//! let err = demo_server::Embedder::load(std::path::Path::new("/nonexistent")).err().unwrap();
//! assert!(format!("{:#}", anyhow::Error::new(err)).contains("config.json"));
//! ```

mod api;
mod embed;

pub use api::{limits, EmbeddingsApp, MAX_BODY, MAX_HEAD, MAX_INPUTS, MODEL_NAME};
pub use embed::{EmbedError, Embedder, Embeddings, MAX_SEQ_LEN, MODEL_FILES};

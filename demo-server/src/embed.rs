//! Sentence embeddings: BERT forward pass, mean pooling over the attention mask, L2 norm.
//!
//! This is what sentence-transformers runs for all-MiniLM-L6-v2 (`modules.json`:
//! Transformer → Pooling(mean) → Normalize), with its `max_seq_length` of 256 tokens.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Tokens per input beyond which text is cut off; sentence-transformers' `max_seq_length` for
/// all-MiniLM-L6-v2 (`sentence_bert_config.json`). Changing it changes the vectors of long inputs.
pub const MAX_SEQ_LEN: usize = 256;

/// Inputs run through the model together; bounds the size of the padded batch tensors.
const BATCH: usize = 16;

/// The file names a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// A model file could not be read.
    #[error("reading the model file")]
    Read(#[source] std::io::Error),
    /// `config.json` is not a BERT configuration.
    #[error("parsing {path}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// `tokenizer.json` could not be loaded or configured.
    #[error("loading the tokenizer {path}: {message}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// The tokenizers crate's message (its error type is a boxed trait object).
        message: String,
    },
    /// The weights in `model.safetensors` do not fit the configuration.
    #[error("loading the weights {path}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// Candle's complaint.
        #[source]
        source: candle_core::Error,
    },
    /// Tokenizing input number `index` failed.
    #[error("tokenizing input {index}: {message}")]
    Tokenize {
        /// The input's position in the request.
        index: usize,
        /// The tokenizers crate's message.
        message: String,
    },
    /// The forward pass or pooling failed for the batch starting at input `index`.
    #[error("running the model on the batch starting at input {index}")]
    Forward {
        /// The position of the batch's first input.
        index: usize,
        /// Candle's complaint.
        #[source]
        source: candle_core::Error,
    },
}

/// One embedding model, loaded and ready: immutable, so it can be shared between threads.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
}

/// The vectors for a list of inputs, in input order, and the tokens they took.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One unit-length vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the model saw, `[CLS]` and `[SEP]` included, summed over inputs.
    pub prompt_tokens: usize,
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir` (CPU, f32).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let config_path = dir.join("config.json");
        let config_text = fs_err::read(&config_path).map_err(EmbedError::Read)?;
        let config: Config =
            serde_json::from_slice(&config_text).map_err(|source| EmbedError::Config {
                path: config_path,
                source,
            })?;

        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer_bytes = fs_err::read(&tokenizer_path).map_err(EmbedError::Read)?;
        let tokenizer_error = |message: String| EmbedError::Tokenizer {
            path: tokenizer_path.clone(),
            message,
        };
        let mut tokenizer =
            Tokenizer::from_bytes(&tokenizer_bytes).map_err(|e| tokenizer_error(e.to_string()))?;
        // The file pads every input to 128 and cuts at 128; sentence-transformers instead pads
        // to the longest input of the batch and cuts at its own max_seq_length.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_SEQ_LEN,
                ..TruncationParams::default()
            }))
            .map_err(|e| tokenizer_error(e.to_string()))?;
        let pad_id = u32::try_from(config.pad_token_id)
            .map_err(|e| tokenizer_error(format!("pad_token_id: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            ..PaddingParams::default()
        }));

        let weights_path = dir.join("model.safetensors");
        let weights = fs_err::read(&weights_path).map_err(EmbedError::Read)?;
        let weights_error = |source| EmbedError::Weights {
            path: weights_path.clone(),
            source,
        };
        // Buffered, not mmapped: the mmap constructor is `unsafe`, which the workspace forbids.
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(weights_error)?;
        let model = BertModel::load(vb, &config).map_err(weights_error)?;
        Ok(Self {
            model,
            tokenizer,
            dim: config.hidden_size,
        })
    }

    /// The length of every vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds `inputs`: one unit-length vector each, in order.
    pub fn embed(&self, inputs: &[&str]) -> Result<Embeddings, EmbedError> {
        let mut vectors = Vec::with_capacity(inputs.len());
        let mut prompt_tokens = 0;
        for (batch_no, batch) in inputs.chunks(BATCH).enumerate() {
            let first = batch_no.saturating_mul(BATCH);
            let (batch_vectors, tokens) = self.embed_batch(batch, first)?;
            vectors.extend(batch_vectors);
            prompt_tokens += tokens;
        }
        Ok(Embeddings {
            vectors,
            prompt_tokens,
        })
    }

    fn embed_batch(
        &self,
        batch: &[&str],
        first: usize,
    ) -> Result<(Vec<Vec<f32>>, usize), EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(batch.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize {
                index: first,
                message: e.to_string(),
            })?;
        let forward = |source| EmbedError::Forward {
            index: first,
            source,
        };
        let rows = encodings.len();
        let cols = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(rows * cols);
        let mut mask = Vec::with_capacity(rows * cols);
        let mut tokens = 0usize;
        for encoding in &encodings {
            ids.extend_from_slice(encoding.get_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
            tokens += encoding
                .get_attention_mask()
                .iter()
                .filter(|&&m| m != 0)
                .count();
        }
        let ids = Tensor::from_vec(ids, (rows, cols), &Device::Cpu).map_err(forward)?;
        let mask = Tensor::from_vec(mask, (rows, cols), &Device::Cpu).map_err(forward)?;
        let type_ids = ids.zeros_like().map_err(forward)?;
        let pooled = self.pool(&ids, &type_ids, &mask).map_err(forward)?;
        Ok((pooled, tokens))
    }

    /// Forward pass, mean over the tokens the mask keeps, then division by the L2 norm.
    fn pool(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let hidden = self.model.forward(ids, type_ids, Some(mask))?; // (rows, cols, dim)
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, cols, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, dim)
                                                           // sentence-transformers clamps the token count at 1e-9 and the norm at 1e-12.
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (rows, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

"""Reference sentence embeddings for all-MiniLM-L6-v2, written from the specifications in numpy.

Independent of the demo server (candle) and of sentence-transformers/torch: only numpy for the
arithmetic and HF `tokenizers` for the word pieces. Every step is computed in float64, so the
demo server's float32 numbers should agree to well under 1e-4.

Usage:
    python3 minilm_reference.py MODEL_DIR '["a sentence", ...]'  > vectors.json
    python3 minilm_reference.py MODEL_DIR < sentences.json       > vectors.json
MODEL_DIR holds config.json, tokenizer.json and model.safetensors. Output: a JSON list with one
unit-length vector (a list of floats) per input, in input order.

Sources, read as specifications:
- safetensors file format (https://github.com/huggingface/safetensors, README "Format"):
  8-byte little-endian unsigned header size N, then N bytes of UTF-8 JSON mapping each tensor
  name to {"dtype", "shape", "data_offsets": [begin, end]}, offsets relative to the byte buffer
  that follows the header; data is little-endian, row-major; "__metadata__" is not a tensor.
- BERT: Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
  Understanding" (arXiv:1810.04805), with the Transformer encoder of Vaswani et al., "Attention
  Is All You Need" (arXiv:1706.03762), in the post-LayerNorm arrangement and with the weight
  names and details of Hugging Face transformers' modeling_bert.py: BertEmbeddings (word +
  absolute position + token type embeddings, LayerNorm), BertSelfAttention (scaled dot product
  per head, additive mask of the dtype's minimum on padding keys, softmax over keys),
  BertSelfOutput (dense, residual, LayerNorm), BertIntermediate (dense, activation
  config["hidden_act"]), BertOutput (dense, residual, LayerNorm). nn.Linear computes
  x @ W.T + b with W stored as [out, in]; nn.LayerNorm uses the biased variance and eps
  config["layer_norm_eps"]. Dropout is the identity at inference.
- GELU: Hendrycks & Gimpel, "Gaussian Error Linear Units" (arXiv:1606.08415), the exact form
  x * (1 + erf(x / sqrt(2))) / 2, which transformers' ACT2FN["gelu"] is.
- Pooling and normalisation: sentence-transformers' Pooling (pooling_mode_mean_tokens: sum of
  the token vectors the attention mask keeps, divided by their count clamped at 1e-9) and
  Normalize (torch.nn.functional.normalize: divide by the L2 norm clamped at 1e-12); the
  model's sentence_bert_config.json sets max_seq_length 256 (inputs are cut to 256 tokens,
  [CLS] and [SEP] included).
"""

import json
import math
import os
import sys

# One BLAS thread: the matrices are small, and on a busy machine OpenBLAS's thread pool makes
# the batched attention products ten times slower. Must be set before numpy loads OpenBLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

# Inputs are cut to this many tokens: sentence-transformers' max_seq_length, read from the
# model's sentence_bert_config.json; this is the value for all-MiniLM-L6-v2 if the file is absent.
MAX_SEQ_LEN = 256

USAGE = "usage: minilm_reference.py MODEL_DIR ['[\"sentence\", ...]']  (or the JSON list on stdin)"

# safetensors dtype names this script reads, and their numpy little-endian equivalents.
DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}


def read_safetensors(path):
    """Returns {name: float64 array} for every tensor in the file, checking the header."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header size")
    n = int.from_bytes(raw[:8], "little")
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header size {n} runs past the end ({len(raw)} bytes)")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = math.prod(shape)
        if not (0 <= begin <= end <= len(data)) or end - begin != count * dtype.itemsize:
            raise ValueError(
                f"{path}: tensor {name}: offsets {begin}..{end} do not hold {shape} {info['dtype']}"
            )
        array = np.frombuffer(data[begin:end], dtype=dtype, count=count).reshape(shape)
        tensors[name] = array.astype(np.float64)
    return tensors


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def linear(x, w, prefix):
    weight = w[prefix + ".weight"]  # [out, in]
    flat = x.reshape(-1, x.shape[-1]) @ weight.T
    return flat.reshape(*x.shape[:-1], weight.shape[0]) + w[prefix + ".bias"]


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu_erf(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


ACTIVATIONS = {"gelu": gelu_erf}


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def encoder(w, config, ids, type_ids, mask):
    """BERT: ids, type_ids, mask [batch, seq] -> last hidden state [batch, seq, hidden]."""
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    head_dim = hidden // heads
    act = ACTIVATIONS[config["hidden_act"]]
    batch, seq = ids.shape
    positions = np.arange(seq)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][positions][None, :, :]
        + w["embeddings.token_type_embeddings.weight"][type_ids]
    )
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    # Padding keys get the most negative float added to their scores: zero weight after softmax.
    additive = (1.0 - mask[:, None, None, :].astype(np.float64)) * np.finfo(np.float64).min

    keep = mask.astype(bool)

    def split(t):  # [batch, seq, hidden] -> [batch, heads, seq, head_dim]
        return np.ascontiguousarray(t.reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3))

    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = split(linear(x, w, p + "attention.self.query"))
        k = split(linear(x, w, p + "attention.self.key"))
        v = split(linear(x, w, p + "attention.self.value"))
        scores = q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) / math.sqrt(head_dim) + additive
        context = softmax(scores) @ v  # [batch, heads, seq, head_dim]
        context = context.transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        attention = layer_norm(
            linear(context, w, p + "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        # The activation only at the tokens the mask keeps (math.erf is one Python call per
        # value); padding positions are never attended to nor pooled, so their values are moot.
        intermediate = linear(attention, w, p + "intermediate.dense")
        intermediate[~keep] = 0.0
        intermediate[keep] = act(intermediate[keep])
        x = layer_norm(
            linear(intermediate, w, p + "output.dense") + attention,
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
            eps,
        )
    return x


def embed(model_dir, sentences):
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if config["hidden_act"] not in ACTIVATIONS:
        raise ValueError(f"config.json: hidden_act {config['hidden_act']!r} is not implemented")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("config.json: only absolute position embeddings are implemented")
    max_seq_len = MAX_SEQ_LEN
    st_config = os.path.join(model_dir, "sentence_bert_config.json")
    if os.path.exists(st_config):
        with open(st_config, encoding="utf-8") as f:
            max_seq_len = json.load(f)["max_seq_length"]
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    # tokenizer.json pads and cuts at 128; sentence-transformers cuts at its max_seq_length and
    # pads to the longest input, which is done by hand below.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_len)
    encodings = tokenizer.encode_batch(sentences, add_special_tokens=True)
    if not encodings:
        return []
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))

    seq = max((len(e.ids) for e in encodings), default=0)
    pad = config.get("pad_token_id", 0)
    ids = np.full((len(encodings), seq), pad, dtype=np.int64)
    type_ids = np.zeros((len(encodings), seq), dtype=np.int64)
    mask = np.zeros((len(encodings), seq), dtype=np.int64)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        ids[row, :n] = e.ids
        type_ids[row, :n] = e.type_ids
        mask[row, :n] = e.attention_mask

    hidden = encoder(w, config, ids, type_ids, mask)
    m = mask[:, :, None].astype(np.float64)
    mean = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    norms = np.maximum(np.sqrt((mean**2).sum(axis=1, keepdims=True)), 1e-12)
    return (mean / norms).tolist()


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(USAGE)
    text = sys.argv[2] if len(sys.argv) == 3 else sys.stdin.read()
    sentences = json.loads(text)
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        sys.exit("input must be a JSON list of strings")
    json.dump(embed(sys.argv[1], sentences), sys.stdout)


if __name__ == "__main__":
    main()

"""Reference embeddings: sentence-transformers itself, on the same model directory.

Usage: python3 reference_st.py MODEL_DIR < inputs.json > vectors.json
(inputs: a JSON array of strings; output: a JSON array of float arrays, normalised).
"""
import json
import sys

from sentence_transformers import SentenceTransformer

model = SentenceTransformer(sys.argv[1], device="cpu")
texts = json.load(sys.stdin)
vectors = model.encode(texts, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
json.dump({"max_seq_length": model.max_seq_length, "vectors": vectors.tolist()}, sys.stdout)

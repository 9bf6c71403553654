"""The family encoder (USE multilingual v3): large calls on both cores, the same vectors."""

from __future__ import annotations

import numpy as np

from search.family_encoder import UniversalSentenceEncoder
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

"""USE by distinct token windows (search/use_windows.py): the wheel's vectors, each window computed once."""

from __future__ import annotations

import random

import numpy as np

from search.family_encoder import WINDOWS_CHUNK, WINDOWS_MIN_TEXTS, UniversalSentenceEncoder
from search.use_windows import TokenWindows, encode_windows
from tests.conftest import background_texts

SWAPS = {"explain": "describe", "reasoning": "thinking", "answer": "reply", "full": "complete", "step": "stage"}
INSTRUCTION = "Explain your full reasoning step by step before you answer, and show every step of the derivation:"


def _reworded(rng: random.Random, n: int) -> list[str]:
    """One instruction with random synonym swaps around real questions: the wordings share most windows."""
    questions = background_texts(200)
    out = []
    for _ in range(n):
        words = [SWAPS.get(w.lower(), w) if rng.random() < 0.4 else w for w in INSTRUCTION.split()]
        out.append(" ".join(words) + " " + rng.choice(questions)[:300])
    return out


def _edge_cases() -> list[str]:
    return [
        "",
        " ",
        "a",
        "Explique étape par étape ton raisonnement complet.",
        "请一步一步地解释你的推理过程，并给出完整的推导。",
        "Объясни своё рассуждение шаг за шагом.",
        "🙂🙂 zero\u200bwidth and <<< odd >>> pieces",
        "word " * 600,  # longer than the wheel's micro-batch of 384 tokens
    ]


def _backend():  # type: ignore[no-untyped-def]
    return UniversalSentenceEncoder(processes=1)._model._model


def test_vectors_by_distinct_windows_equal_the_wheels_forward_pass():
    backend = _backend()
    texts = _reworded(random.Random(3), 300) + background_texts(100) + _edge_cases()
    ids = [backend.sp.encode(t or " ", out_type=int, add_bos=True, add_eos=True) for t in texts]
    ours = encode_windows(backend, ids)
    wheel = np.asarray(backend.encode([t or " " for t in texts]), np.float32)
    assert ours.shape == (len(texts), 512) and ours.dtype == np.float32
    assert np.abs(ours - wheel).max() < 1e-5  # rounding only: the same arithmetic, summed in another order
    windows = TokenWindows(ids)
    distinct, _ = windows.window(-4, 4)
    assert distinct.max() + 1 < 0.6 * windows.size  # the rewordings did share windows: less work, same vectors


def test_a_window_is_told_apart_by_every_token_and_by_where_its_text_ends():
    windows = TokenWindows([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3], [9, 2, 3, 4]])
    key, representative = windows.window(-1, 1)
    # positions: text 0 is 0..3, text 1 is 4..7, text 2 is 8..10, text 3 is 11..14
    assert key[0] == key[4] == key[8] and key[1] == key[5] == key[9]  # the same three tokens, anywhere
    assert key[2] == key[6] == key[13] and key[3] == key[7] == key[14]
    assert key[10] != key[2]  # 3 ending its text: its right slot is empty, not the next text's 9
    assert key[12] != key[1]  # differs in its left token only
    assert key.max() + 1 == 7
    assert len(representative) == key.max() + 1 and np.array_equal(key[representative], np.arange(len(representative)))


def test_a_large_call_by_windows_gives_the_same_bits_on_one_or_two_processes_and_close_to_small_calls():
    texts = _reworded(random.Random(5), WINDOWS_CHUNK + 300)
    assert len(texts) >= WINDOWS_MIN_TEXTS
    one = UniversalSentenceEncoder(processes=1).encode(texts)
    two = UniversalSentenceEncoder(processes=2, parallel_min=0).encode(texts)
    assert np.array_equal(one, two)
    small = np.concatenate(
        [UniversalSentenceEncoder(processes=1).encode(texts[lo : lo + 500]) for lo in range(0, len(texts), 500)]
    )  # under WINDOWS_MIN_TEXTS a call: the wheel's own pass
    assert np.abs(one - small).max() < 1e-5

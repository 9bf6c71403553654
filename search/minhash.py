"""Bulk MinHash signatures compatible with datasketch's "affine32" scheme.

Shingling (of the *normalized* text, as UTF-8 bytes):
  * word 3-grams (words split on the single spaces normalization leaves), and
  * byte 5-grams, so short prompts and small edits still carry signal;
  a document shorter than one n-gram contributes its whole word/byte sequence instead.

Each shingle gets a 32-bit hash computed in numpy for the whole batch at once (a
polynomial hash over the byte array, mixed with the splitmix64 finalizer). Those
hashes are what datasketch's `hashfunc` would return: the signature equals
`datasketch.MinHash(num_perm, seed, hashfunc=<these hashes>, scheme="affine32")`
updated shingle by shingle (pinned by a test), so `LeanMinHash` can wrap it for
`MinHashLSH`. The permutations are datasketch's own, vectorized over all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from datasketch import LeanMinHash, MinHash

MINHASH_VERSION = 1
SHINGLING = "word3+byte5/utf8-normalized/poly64-splitmix/v1"
_SCHEME = "affine32"

_U64 = np.uint64
_POLY = _U64(0x100000001B3)  # odd, so it is invertible mod 2**64
_POLY_INV = _U64(pow(int(_POLY), -1, 1 << 64))
_WORD_MULTIPLIERS = (_U64(0x9E3779B97F4A7C15), _U64(0xC2B2AE3D27D4EB4F))
_SALT_WORD, _SALT_BYTE = _U64(0x1656667B19E3779F), _U64(0x27D4EB2F165667C5)
_WORD_N, _BYTE_N = 3, 5
_SPACE = 0x20
# Shingle columns per signature chunk: 128 perms x 8k shingles x 4 B = 4 MiB of scratch, which
# the multiply, add and min passes find in cache; at 32k (16 MiB) they went to memory and the
# eval corpus signed ~15k docs/s against ~26k now (medians of 8 alternating runs).
_CHUNK_SHINGLES = 8192


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Avalanche 64-bit values (the splitmix64 finalizer); uint64 arithmetic wraps."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _fmix32(x: np.ndarray) -> np.ndarray:
    """datasketch's affine32 pre-mix (the MurmurHash3 32-bit finalizer)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.full(n, base, dtype=_U64)
    out[0] = 1
    return np.cumprod(out, dtype=_U64)


class _ByteBatch:
    """The batch's texts as one byte array, with prefix sums for O(1) substring hashes."""

    def __init__(self, texts: Sequence[str]):
        encoded = [t.encode("utf-8") for t in texts]
        self.lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        self.starts = np.concatenate(([0], np.cumsum(self.lengths)[:-1])) if len(encoded) else self.lengths
        self.data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.doc_of_byte = np.repeat(np.arange(len(encoded), dtype=np.int64), self.lengths)
        n = len(self.data)
        self._pow = _powers(_POLY, max(n, 1))
        weighted = (self.data.astype(_U64) + _U64(1)) * _powers(_POLY_INV, max(n, 1))[:n]
        self._prefix = np.concatenate(([_U64(0)], np.cumsum(weighted, dtype=_U64)))

    def substring_hash(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Polynomial hash of data[start:end] for arrays of non-empty ranges."""
        return self._pow[end - 1] * (self._prefix[end] - self._prefix[start])


def _word_shingles(batch: _ByteBatch) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, 64-bit hash) of every word 3-gram; shorter docs give their whole word list."""
    data, doc = batch.data, batch.doc_of_byte
    n = len(data)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, _U64)
    is_word = data != _SPACE
    first_of_doc = np.zeros(n, bool)
    last_of_doc = np.zeros(n, bool)
    nonempty = batch.lengths > 0
    first_of_doc[batch.starts[nonempty]] = True
    last_of_doc[(batch.starts + batch.lengths - 1)[nonempty]] = True
    prev_space = np.concatenate(([True], ~is_word[:-1])) | first_of_doc
    next_space = np.concatenate((~is_word[1:], [True])) | last_of_doc
    word_start = np.flatnonzero(is_word & prev_space)
    word_end = np.flatnonzero(is_word & next_space) + 1
    words = batch.substring_hash(word_start, word_end)
    word_doc = doc[word_start]
    m1, m2 = _WORD_MULTIPLIERS
    # Full 3-grams: three consecutive words of the same document.
    same = word_doc[: -2 or None][: max(len(words) - 2, 0)] == word_doc[2:]
    idx = np.flatnonzero(same)
    grams = words[idx] * m1 + words[idx + 1] * m2 + words[idx + 2]
    gram_doc = word_doc[idx]
    # Documents with one or two words: one shingle of all their words.
    counts = np.bincount(word_doc, minlength=len(batch.lengths))
    short_docs = np.flatnonzero((counts > 0) & (counts < _WORD_N))
    first_word = np.searchsorted(word_doc, short_docs)
    second = np.where(counts[short_docs] == 2, words[np.minimum(first_word + 1, len(words) - 1)] * m2, _U64(0))
    short = words[first_word] * m1 + second
    return np.concatenate((gram_doc, short_docs)), np.concatenate((grams, short))


def _byte_shingles(batch: _ByteBatch) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, 64-bit hash) of every byte 5-gram; shorter docs give their whole bytes."""
    n, doc = len(batch.data), batch.doc_of_byte
    start = np.arange(max(n - _BYTE_N + 1, 0), dtype=np.int64)
    start = start[doc[start] == doc[start + _BYTE_N - 1]] if len(start) else start
    short_docs = np.flatnonzero((batch.lengths > 0) & (batch.lengths < _BYTE_N))
    s = np.concatenate((start, batch.starts[short_docs]))
    e = np.concatenate((start + _BYTE_N, batch.starts[short_docs] + batch.lengths[short_docs]))
    return np.concatenate((doc[start], short_docs)), batch.substring_hash(s, e)


def shingle_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """32-bit shingle hashes of normalized texts, grouped by text: (hashes, offsets of each text)."""
    batch = _ByteBatch(texts)
    word_doc, word_hash = _word_shingles(batch)
    byte_doc, byte_hash = _byte_shingles(batch)
    docs = np.concatenate((word_doc, byte_doc))
    mixed = np.concatenate((_splitmix64(word_hash ^ _SALT_WORD), _splitmix64(byte_hash ^ _SALT_BYTE)))
    order = np.argsort(docs, kind="stable")
    hashes = (mixed[order] >> _U64(32)).astype(np.uint32)
    counts = np.bincount(docs, minlength=len(texts))
    offsets = np.concatenate(([0], np.cumsum(counts)))
    return hashes, offsets


class MinHasher:
    """Computes datasketch-compatible MinHash signatures for batches of normalized texts."""

    def __init__(self, num_perm: int = 128, seed: int = 1):
        if num_perm < 16:
            raise ValueError(f"num_perm={num_perm} is too small for useful estimates; use at least 16")
        self.num_perm = num_perm
        self.seed = seed
        # datasketch's own generator, so its LSH and ours agree on every permutation.
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME).permutations
        self._a = a.astype(np.uint32)[:, None]
        self._b = b.astype(np.uint32)[:, None]

    @property
    def fingerprint(self) -> str:
        """A digest of shingling version and permutations; changes if signatures would."""
        digest = hashlib.sha256(SHINGLING.encode())
        digest.update(self._a.tobytes())
        digest.update(self._b.tobytes())
        return digest.hexdigest()[:16]

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), num_perm) uint32 signatures; an empty text gets the empty sketch (all max)."""
        hashes, offsets = shingle_hashes(texts)
        premixed = _fmix32(hashes)
        out = np.full((len(texts), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        # One scratch buffer for every chunk, written in place: allocating a fresh temporary
        # per chunk (and a second one for the add) halved the throughput.
        scratch = np.empty((self.num_perm, min(_CHUNK_SHINGLES, len(premixed))), np.uint32)
        for lo, hi in _doc_chunks(offsets):
            seg = premixed[offsets[lo] : offsets[hi]]
            if not len(seg):
                continue
            # uint32 wraparound is the mod 2**32; a single document longer than a chunk gets its own buffer
            permuted = (
                scratch[:, : len(seg)]
                if len(seg) <= scratch.shape[1]
                else np.empty_like(scratch, shape=(self.num_perm, len(seg)))
            )
            np.multiply(self._a, seg[None, :], out=permuted)
            np.add(permuted, self._b, out=permuted)
            local = offsets[lo:hi] - offsets[lo]
            nonempty = np.diff(offsets[lo : hi + 1]) > 0
            mins = np.minimum.reduceat(permuted, local[nonempty], axis=1)
            out[lo:hi][nonempty] = mins.T
        return out

    def signature(self, text: str) -> np.ndarray:
        """The signature of one normalized text (the same code path as the batch)."""
        return self.signatures([text])[0]

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        """Wrap a raw signature for datasketch (e.g. MinHashLSH.insert/query)."""
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme=_SCHEME)


def _doc_chunks(offsets: np.ndarray):  # type: ignore[no-untyped-def]
    """Split docs into runs of about _CHUNK_SHINGLES shingles (at least one doc per run)."""
    n = len(offsets) - 1
    lo = 0
    while lo < n:
        hi = int(np.searchsorted(offsets, offsets[lo] + _CHUNK_SHINGLES, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        yield lo, hi
        lo = hi


def estimate_jaccard(signature: np.ndarray, others: np.ndarray) -> np.ndarray:
    """MinHash Jaccard estimate of one signature against each row of others."""
    return (others == signature[None, :]).mean(axis=1)

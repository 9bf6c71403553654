"""Candidate pairs and clusters: banded self-joins, mutual kNN, and a union-find that refuses chains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np

from search.vectors import VectorIndex, choose_kind, faiss_threads

_U64 = np.uint64
# A side this small is checked member by member: copies of a prompt that a campaign member
# reuses as slot content must not ride into the campaign on that member's back.
_CHECK_EACH = 16
# Gram-matrix entries computed at once by the bucketed kNN (float32: 64 MB).
_GRAM_ENTRIES = 1 << 24


@dataclass(frozen=True)
class Edges:
    """Verified similar pairs (indices into the window) with the similarity that justified them."""

    left: np.ndarray
    right: np.ndarray
    weight: np.ndarray

    @classmethod
    def empty(cls) -> Edges:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @classmethod
    def concat(cls, parts: list[Edges]) -> Edges:
        parts = [p for p in parts if len(p.left)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("left", "right", "weight")))


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 hash of each band, the same banding datasketch's MinHashLSH uses."""
    n = len(signatures)
    keys = np.zeros((n, bands), dtype=_U64)
    for band in range(bands):
        block = signatures[:, band * rows : (band + 1) * rows].astype(_U64)
        h = np.full(n, _U64(0xCBF29CE484222325) ^ _U64(band), dtype=_U64)
        for col in range(rows):
            h = (h ^ block[:, col]) * _U64(0x100000001B3)
        keys[:, band] = h
    return keys


def band_pairs(signatures: np.ndarray, bands: int, rows: int, queries: np.ndarray | None = None) -> np.ndarray:
    """Candidate pairs (k, 2) sharing a band: each query joins the first other member of its bucket.

    Star joins keep a bucket of m members at m-1 pairs instead of m²/2; the other bands and
    the union-find connect the rest. With queries=None every row is a query (a full self-join).
    """
    keys = band_keys(signatures, bands, rows)
    n = len(signatures)
    is_query = np.ones(n, bool) if queries is None else np.isin(np.arange(n), queries)
    pairs = []
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
        sizes = np.diff(np.concatenate((starts, [n])))
        group_of = np.repeat(np.arange(len(starts)), sizes)
        first = order[starts][group_of]  # the bucket's first member, per position
        second = order[np.minimum(starts + 1, n - 1)][group_of]
        partner = np.where(first == order, second, first)
        ok = (sizes[group_of] > 1) & is_query[order]
        pairs.append(np.stack((order[ok], partner[ok]), axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    both = np.concatenate(pairs)
    both = np.sort(both, axis=1)
    return np.unique(both[both[:, 0] != both[:, 1]], axis=0)


def mutual_knn_edges(
    vectors: np.ndarray, k: int, min_cosine: float, queries: np.ndarray | None = None, vector_index: str = "auto"
) -> Edges:
    """Pairs that are each other's k nearest neighbours with cosine >= min_cosine.

    Mutuality is the chaining guard for embeddings: a hub close to two families is rarely
    among the nearest neighbours of both families' members.
    """
    n = len(vectors)
    if n < 2:
        return Edges.empty()
    k = min(k + 1, n)
    knn = _flat_knn(vectors) if choose_kind(vector_index, n) == "flat" else _BucketKnn(vectors)
    asked = np.arange(n, dtype=np.int64) if queries is None else np.asarray(queries, np.int64)
    first_ids, first_scores = knn.search(asked, k)
    others = np.setdiff1d(np.unique(first_ids[first_ids >= 0]), asked)
    second_ids, second_scores = knn.search(others, k)
    rows = np.concatenate((asked, others))
    found, scores = np.concatenate((first_ids, second_ids)), np.concatenate((first_scores, second_scores))
    q, j, s = np.repeat(rows, found.shape[1]), found.ravel(), scores.ravel()
    valid = (j >= 0) & (j != q)
    q, j, s = q[valid], j[valid], s[valid]
    mutual = np.isin(j * n + q, q * n + j)  # j lists q among its neighbours too
    keep = mutual & (s >= min_cosine) & np.isin(q, asked)
    pairs = np.sort(np.stack((q[keep], j[keep]), axis=1), axis=1)
    if not len(pairs):
        return Edges.empty()
    pairs, first_idx = np.unique(pairs, axis=0, return_index=True)
    return Edges(pairs[:, 0], pairs[:, 1], s[keep][first_idx].astype(np.float32))


class _flat_knn:  # noqa: N801  (a callable-like helper, named for what it does)
    """Exact kNN with a flat FAISS index (small windows)."""

    def __init__(self, vectors: np.ndarray):
        self._vectors = vectors
        self._index = VectorIndex.build(vectors, np.arange(len(vectors), dtype=np.int64), "flat")

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not len(rows):
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        with faiss_threads(faiss.omp_get_max_threads()):
            found = self._index.search(self._vectors[rows], k)
        return found.ids, found.scores


class _BucketKnn:
    """Approximate kNN for large windows: exact, BLAS-blocked search inside k-means buckets.

    Vectors are bucketed by spherical k-means (~2,000 per bucket); each vector is stored in
    its two nearest buckets and searched in its nearest one, so every bucket is one dense
    matrix product. At a million prompts this replaces an IVF index whose training alone took
    most of the ten-minute budget here; near-duplicates (cosine >= 0.9) almost always share
    their nearest centroid, and the two-bucket storage catches most that straddle a border.
    """

    def __init__(self, vectors: np.ndarray, bucket_size: int = 2000, seed: int = 0):
        self._vectors = vectors
        n, dim = vectors.shape
        nlist = max(1, n // bucket_size)
        sample = vectors[np.random.default_rng(seed).permutation(n)[: nlist * 40]]
        kmeans = faiss.Kmeans(dim, nlist, niter=10, spherical=True, seed=seed, verbose=False)
        kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(kmeans.centroids)
        with faiss_threads(faiss.omp_get_max_threads()):
            _, nearest = quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), min(2, nlist))
        self._home = nearest[:, 0]
        stored = nearest.ravel()
        order = np.argsort(stored, kind="stable")
        self._members = np.repeat(np.arange(n), nearest.shape[1])[order]
        self._starts = np.searchsorted(stored[order], np.arange(nlist + 1))

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.full((len(rows), k), -1, dtype=np.int64)
        scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
        buckets = self._home[rows]
        for bucket in np.unique(buckets):
            in_bucket = np.flatnonzero(buckets == bucket)
            members = self._members[self._starts[bucket] : self._starts[bucket + 1]]
            stored = self._vectors[members]
            top = min(k, len(members))
            # a campaign can fill a bucket with tens of thousands of prompts: a block of rows at
            # a time keeps the Gram matrix (and argpartition's copies of it) to ~64 MB
            step = max(1, _GRAM_ENTRIES // max(len(members), 1))
            for lo in range(0, len(in_bucket), step):
                local = in_bucket[lo : lo + step]
                gram = self._vectors[rows[local]] @ stored.T  # one BLAS call per block
                best = np.argpartition(-gram, top - 1, axis=1)[:, :top]
                best_scores = np.take_along_axis(gram, best, axis=1)
                order = np.argsort(-best_scores, axis=1)
                ids[local, :top] = members[np.take_along_axis(best, order, axis=1)]
                scores[local, :top] = np.take_along_axis(best_scores, order, axis=1)
        return ids, scores


class GuardedUnionFind:
    """Union-find whose merges into a multi-member cluster must pass a representative check.

    Single linkage chains: one bridging prompt similar to two unrelated families would join
    them, and a prompt that resembles one member's slot content would join its campaign.
    Here, once a side has members, the representatives (the members that founded each
    cluster; a lone prompt is its own) must themselves be alike, so one bridge is never enough.
    """

    def __init__(self, n: int, similar: Callable[[int, int], bool]):
        self.parent = np.arange(n)
        self.size = np.ones(n, np.int64)
        self._similar = similar
        self._members: dict[int, list[int]] = {}  # members of tiny clusters, for the per-member check
        self._witness: dict[int, int] = {}
        self._refusals: set[tuple[int, int, int, int]] = set()
        self.refused = 0

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return int(root)

    def union(self, a: int, b: int, *, trusted: bool = False) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        if not trusted and self.size[ra] > 1:
            state = (ra, rb, int(self.size[ra]), int(self.size[rb]))
            if state in self._refusals or not self._alike_to(ra, rb):
                self._refusals.add(state)  # the same two clusters come up again on other bands' edges
                self.refused += 1
                return False
        self.parent[rb] = ra  # the bigger cluster's root (its founder) stays the representative
        self._witness.setdefault(ra, rb)  # the first other member it accepted
        self.size[ra] += self.size[rb]
        if self.size[ra] <= _CHECK_EACH:
            self._members[ra] = self._members.get(ra, [ra]) + self._members.pop(rb, [rb])
        else:
            self._members.pop(ra, None)
            self._members.pop(rb, None)
        return True

    def _alike_to(self, big: int, small: int) -> bool:
        """The small side's representative (for a tiny side, each member) resembles big's founder and witness.

        Two references, not one: a prompt can match the founder in a part that is not what
        the cluster shares (e.g. the same slot text under a campaign's wrapper).
        """
        references = [big] + ([self._witness[big]] if big in self._witness else [])
        if self.size[small] > _CHECK_EACH:
            members = [small] + ([self._witness[small]] if small in self._witness else [])
        else:
            members = [small] + [i for i in self._members.get(small, ()) if i != small]
        return all(self._similar(r, m) for r in references for m in members)

    def labels(self) -> np.ndarray:
        return np.asarray([self.find(i) for i in range(len(self.parent))])

"""Mutual kNN edges on Ray: `knn.mutual_knn_edges` split into tasks, with the same edges.

One node computes each query's top-k in blocks whose shape depends only on the data
(knn.py). Every task here computes whole blocks of that same plan, so the bits agree:
- flat windows (below the IVF size): each task takes a run of the query blocks and searches
  them against every vector (at most IVF_THRESHOLD vectors, 77 MB at 384 dimensions);
- bucketed windows: one task trains the same spherical k-means on the same sample; tasks
  over runs of the assignment blocks send each vector to its two nearest buckets (a shuffle
  by bucket); each bucket partition then runs its buckets' searches. No task holds more
  than its own buckets, so the window can outgrow one node's memory.
The directed neighbour lists are then shuffled by unordered pair, and each partition keeps
the mutual pairs with `knn.mutual_edges`, the single node's rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from search.vectors import choose_kind

from ..knn import (
    BUCKET_SIZE,
    ExactKnn,
    buckets_for,
    kmeans_sample,
    mutual_edges,
    parallel_map,
    rows_per_block,
    spherical_kmeans,
    top_k,
)
from .cluster import import_ray
from .shuffle import RETRIES, Table, concat, map_task, partition_of, shuffle, split

COSINE = 3  # the edge kind of kNN edges (dedup.KINDS)


def ray_mutual_knn(
    blocks: list[Any],
    block_rows: int,
    n: int,
    k: int,
    min_cosine: float,
    parts: int,
    *,
    vector_index: str = "auto",
    bucket_size: int = BUCKET_SIZE,
) -> list[Any]:
    """Refs to edge tables (kind, a, b, weight) holding exactly `mutual_knn_edges`'s edges.

    blocks are refs to the window's blocks of block_rows rows (the last may be shorter),
    each with a "vectors" column.
    """
    ray = import_ray()
    if n < 2:
        return []
    k = min(k + 1, n)
    if choose_kind(vector_index, n) == "flat":
        step = rows_per_block(n)
        flat = ray.remote(map_task).options(num_returns=parts, max_retries=RETRIES)
        directed = [
            flat.remote(_flat_search, blocks, block_rows, lo, hi, k, n, parts)
            for lo, hi in aligned_ranges(n, step, max(step, -(-n // parts)))
        ]
    else:
        nlist = buckets_for(n, bucket_size)
        centroids = ray.remote(_centroids).options(max_retries=RETRIES).remote(blocks, block_rows, n, nlist)
        step = rows_per_block(nlist)
        assigned = [(blocks, block_rows, lo, hi, centroids, parts) for lo, hi in aligned_ranges(n, step, block_rows)]
        directed = shuffle(ray, _assign, assigned, _bucket_search, parts, extra=(k, n, parts), reduce_returns=parts)
    if parts == 1:
        directed = [[d] for d in directed]
    mutual = ray.remote(_mutual_task).options(max_retries=RETRIES)
    return [mutual.remote(n, min_cosine, *(d[p] for d in directed)) for p in range(parts)]


def aligned_ranges(n: int, step: int, target: int) -> list[tuple[int, int]]:
    """[lo, hi) runs of whole step-row blocks covering n rows, about target rows each."""
    span = max(1, target // step) * step
    return [(lo, min(lo + span, n)) for lo in range(0, n, span)]


def _rows(blocks: list[Any], block_rows: int, lo: int, hi: int) -> np.ndarray:
    """Vectors of window rows [lo, hi), fetched from the blocks that hold them."""
    ray = import_ray()
    parts = []
    for b in range(lo // block_rows, (hi - 1) // block_rows + 1):
        start = b * block_rows
        parts.append(ray.get(blocks[b])["vectors"][max(lo - start, 0) : hi - start])
    return np.concatenate(parts)


def _flat_search(blocks: list[Any], block_rows: int, lo: int, hi: int, k: int, n: int, parts: int) -> list[Table]:
    """Map: the neighbours of query rows [lo, hi) among every vector, split by pair."""
    ids, scores = ExactKnn(_rows(blocks, block_rows, 0, n)).search(np.arange(lo, hi, dtype=np.int64), k)
    return _by_pair(np.repeat(np.arange(lo, hi, dtype=np.int64), ids.shape[1]), ids.ravel(), scores.ravel(), n, parts)


def _centroids(blocks: list[Any], block_rows: int, n: int, nlist: int) -> np.ndarray:
    """The single node's k-means centroids, from its sample gathered one block at a time."""
    ray = import_ray()
    picked = kmeans_sample(n, nlist)
    sample = None
    for b, ref in enumerate(blocks):
        lo = b * block_rows
        vectors = ray.get(ref)["vectors"]
        here = np.flatnonzero((picked >= lo) & (picked < lo + len(vectors)))
        if sample is None:
            sample = np.empty((len(picked), vectors.shape[1]), np.float32)
        sample[here] = vectors[picked[here] - lo]
        del vectors
    if sample is None:
        raise ValueError("k-means needs vectors; the index's blocks hold none")
    return spherical_kmeans(sample, nlist)


def _assign(blocks: list[Any], block_rows: int, lo: int, hi: int, centroids: np.ndarray, parts: int) -> list[Table]:
    """Map: each row of [lo, hi) with its vector to its two nearest buckets (the first is its home)."""
    vectors = _rows(blocks, block_rows, lo, hi)
    nearest, _ = ExactKnn(centroids).nearest(vectors, min(2, len(centroids)))
    width = nearest.shape[1]
    table = {
        "bucket": nearest.ravel(),
        "row": np.repeat(np.arange(lo, hi, dtype=np.int64), width),
        "home": np.tile(np.arange(width) == 0, hi - lo),
        "vector": np.repeat(vectors, width, axis=0),
    }
    return split(table, partition_of(table["bucket"], parts), parts)


def _bucket_search(table: Table, k: int, n: int, parts: int) -> list[Table]:
    """Reduce: each bucket's home rows searched among its members (as BucketKnn does), split by pair."""
    if not table or not len(table["row"]):
        return [{} for _ in range(parts)]
    order = np.lexsort((table["row"], table["bucket"]))
    bucket, row, home, vector = (table[c][order] for c in ("bucket", "row", "home", "vector"))
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    bounds = list(zip(starts.tolist(), [*starts[1:].tolist(), len(bucket)]))

    def one_bucket(bound: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = bound
        queries = np.flatnonzero(home[lo:hi])
        found, scores = top_k(vector[lo:hi][queries], vector[lo:hi], k)
        members = row[lo:hi]
        return np.repeat(members[queries], found.shape[1]), members[found].ravel(), scores.ravel()

    searched = [s for s in parallel_map(one_bucket, bounds) if len(s[0])]
    if not searched:
        return [{} for _ in range(parts)]
    q, j, s = (np.concatenate(c) for c in zip(*searched))
    return _by_pair(q, j, s, n, parts)


def _by_pair(q: np.ndarray, j: np.ndarray, s: np.ndarray, n: int, parts: int) -> list[Table]:
    """Directed entries (self and padding dropped) split so both directions of a pair meet."""
    valid = (j >= 0) & (j != q)
    q, j, s = q[valid], j[valid], s[valid]
    pair = np.minimum(q, j) * n + np.maximum(q, j)
    return split({"q": q, "j": j, "s": s}, partition_of(pair, parts), parts)


def _mutual_task(n: int, min_cosine: float, *pieces: Table) -> Table:
    """Reduce: the mutual pairs of this partition as kNN edges."""
    table = concat(pieces)
    if not table or not len(table["q"]):
        return {}
    order = np.argsort(table["q"], kind="stable")  # mutual_edges weighs a pair by its lower q's entry
    edges = mutual_edges(table["q"][order], table["j"][order], table["s"][order], n, min_cosine)
    kind = np.full(len(edges.left), COSINE, np.int64)
    return {"kind": kind, "a": edges.left, "b": edges.right, "weight": edges.weight}

"""VectorIndex: a thin FAISS wrapper keyed by store row ids; returns (ids, scores), never D/I."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import faiss
import numpy as np

from .signals import Signals

logger = logging.getLogger(__name__)

# Below this many vectors an exact flat scan is fast enough (~5 ms per query at 50k, 384-d)
# and needs no training; above it, IVF-Flat with nlist = 4*sqrt(N) and nprobe = 16 keeps
# recall@10 >= 0.98 against exact search at a fraction of the scan (see bench/).
IVF_THRESHOLD = 50_000
KINDS = ("auto", "flat", "ivf")


@dataclass(frozen=True)
class Neighbours:
    """Nearest stored rows for each query, best first; -1 / nan pad short rows."""

    ids: np.ndarray  # (queries, k) int64
    scores: np.ndarray  # (queries, k) float32 inner products = cosines


@contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """Run FAISS with n OpenMP threads (one query is 2-3x faster on one thread here)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def choose_kind(kind: str, count: int) -> str:
    """Resolve 'auto' to the concrete index kind for count vectors."""
    if kind not in KINDS:
        raise ValueError(f"vector index kind {kind!r} unknown; use one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    return "ivf" if count >= IVF_THRESHOLD else "flat"


def ivf_lists(count: int) -> int:
    """nlist for IVF: 4*sqrt(N), at least 1, at most N/39 so k-means has enough points per list."""
    return max(1, min(int(4 * math.sqrt(max(count, 1))), max(count // 39, 1)))


class VectorIndex:
    """Inner-product FAISS index over unit vectors, ids = store rows."""

    def __init__(self, index: faiss.Index, kind: str):
        self._index = index
        self.kind = kind

    @classmethod
    def empty(cls, dim: int) -> VectorIndex:
        """An exact index with nothing in it."""
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "flat")

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, kind: str = "auto", *, nprobe: int = 16) -> VectorIndex:
        """Build the right index for this many vectors (training IVF on them if needed)."""
        dim = vectors.shape[1]
        concrete = choose_kind(kind, len(vectors))
        if concrete == "flat":
            index = cls.empty(dim)
        else:
            nlist = ivf_lists(len(vectors))
            quantizer = faiss.IndexFlatIP(dim)
            ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: nlist * 256]]
            logger.info("training IVF: %d lists on %d vectors", nlist, len(sample))
            ivf.train(sample)
            ivf.nprobe = min(nprobe, nlist)
            index = cls(ivf, "ivf")
        index.add(vectors, ids)
        return index

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add unit vectors under the given row ids."""
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def insert_signals(self, rows: np.ndarray, signals: Signals) -> None:
        """Add the embeddings of rows."""
        self.add(signals.vectors, rows)

    def remove(self, ids: np.ndarray) -> int:
        """Remove rows; returns how many were present."""
        if not len(ids):
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids.astype(np.int64))))

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None) -> Neighbours:
        """Top-k rows by inner product for each query, optionally only among allowed rows."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, len(self))) if len(self) else 1
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed.astype(np.int64))
            if self.kind == "ivf":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=self._index.nprobe)
            else:
                params = faiss.SearchParameters(sel=selector)
        scores, ids = self._index.search(queries, k, params=params)
        return Neighbours(ids=ids, scores=scores)

    def range_search(self, queries: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row with inner product >= min_score: (limits, scores, ids), query i in lims[i]:lims[i+1]."""
        # FAISS keeps results strictly above the radius; nudge it down to include equality.
        lims, scores, ids = self._index.range_search(
            np.ascontiguousarray(queries, dtype=np.float32), float(np.nextafter(np.float32(min_score), np.float32(-2)))
        )
        return lims, scores, ids

    def ids(self) -> np.ndarray:
        """Every stored row id (for consistency checks)."""
        if self.kind == "flat":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        invlists = self._index.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(invlists.nlist)
            if invlists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def to_bytes(self) -> memoryview:
        return memoryview(faiss.serialize_index(self._index))

    @classmethod
    def from_bytes(cls, payload: bytes, kind: str) -> VectorIndex:
        index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        return cls(index, kind)

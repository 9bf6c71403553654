"""VectorIndex: a thin FAISS wrapper keyed by store row ids; answers in named records, never D/I."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import faiss
import numpy as np

from .signals import Signals
from .snapshot import Sink

logger = logging.getLogger(__name__)

# Below this many vectors an exact flat scan is fast enough (4-5 ms per query at 50k, 384-d,
# one thread: it reads N * 1.5 kB at ~15 GB/s) and needs no training. From it on, IVF-Flat with
# nlist = 4*sqrt(N) and nprobe = 32. Measured by bench/faiss_scale.py on real MiniLM vectors
# (1M: real ones plus campaign-like noisy copies), recall@10 against exact, one-thread p50:
#     50k: 0.990 in 0.35 ms (flat 5.4 ms); nprobe 16 gave 0.980, too close to the 0.98 target
#    100k: 0.998 in 0.5 ms (flat 12.6 ms); build 11 s
#      1M: 0.9996 in 2 ms (flat 151 ms); build 90 s
# From FP16_THRESHOLD on, "auto" keeps the same lists with each vector as half floats
# ("ivf-fp16"): on the static backend's indexes (bench/vector_choice.py, an index's own vectors)
# recall@10 stays within 0.005 of IVF-Flat at every nprobe (1M: 0.986 vs 0.990 at nprobe 128;
# 4M: 0.9961 vs 0.9960 at 127), in half the bytes (521 vs 1,049 a vector) and faster (4M p50 6.9
# vs 10.1 ms: half the bytes scanned). Rejected: HNSW (FAISS cannot remove from it; recall
# 0.95-0.98 at 1M); IVF-SQ8 (8-bit codes, 4x smaller): 0.985 on MiniLM, but 0.75-0.80 on the
# static backend's vectors at 1M and 4M, whose near-duplicates differ by less than its step.
IVF_THRESHOLD = 50_000
FP16_THRESHOLD = 1_000_000
NPROBE = 32
# Lists probed grow with the lists there are: the static backend's vectors lie closer together
# than MiniLM's, and on its 1M index (2,025 lists) nprobe 32 gave recall@10 0.929, 64 gave 0.972,
# 128 gave 0.990 (bench/vector_choice.py). A 32nd of the lists keeps recall >= 0.95 as the index
# grows, at the cost of scanning a 32nd of the vectors per search (4M, 4,159 lists: 32 gave 0.963,
# 64 0.986, 127 0.996 at p50 10 ms on IVF-Flat, 6.9 ms as half floats).
PROBED_SHARE = 32
# k-means on 64 points per list for 10 iterations gives the recall of 256 points and 25 iterations
# (within 0.001 at 100k) and trains ~10x faster at 1M: ~80 s, against ~13 min extrapolated from
# 2 iterations of the old settings, on two busy cores.
TRAIN_POINTS_PER_LIST = 64
KMEANS_ITERATIONS = 10
KINDS = ("auto", "flat", "ivf", "ivf-fp16")
IVF_KINDS = ("ivf", "ivf-fp16")


@dataclass(frozen=True)
class Neighbours:
    """Nearest stored rows for each query, best first; -1 / nan pad short rows."""

    ids: np.ndarray  # (queries, k) int64
    scores: np.ndarray  # (queries, k) float32 inner products = cosines


@dataclass(frozen=True)
class InRange:
    """Every stored row within a radius of each query: query i's are ids[limits[i]:limits[i + 1]]."""

    limits: np.ndarray  # (queries + 1,) int64 offsets into ids and scores
    ids: np.ndarray  # int64 rows, grouped by query
    scores: np.ndarray  # float32 inner products, parallel to ids

    def ids_of(self, query: int) -> np.ndarray:
        """The rows within the radius of query number `query` (in FAISS's order)."""
        return self.ids[self.limits[query] : self.limits[query + 1]]

    def scores_of(self, query: int) -> np.ndarray:
        """Their inner products, in the same order."""
        return self.scores[self.limits[query] : self.limits[query + 1]]


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
    if count >= FP16_THRESHOLD:
        return "ivf-fp16"
    return "ivf" if count >= IVF_THRESHOLD else "flat"


def ivf_lists(count: int) -> int:
    """nlist for IVF: 4*sqrt(N), at least 1, at most N/39 so k-means has enough points per list."""
    return max(1, min(int(4 * math.sqrt(max(count, 1))), max(count // 39, 1)))


def ivf_probes(nlist: int) -> int:
    """How many of nlist lists a search probes: NPROBE, or a PROBED_SHARE-th of them when that is more."""
    return min(nlist, max(NPROBE, math.ceil(nlist / PROBED_SHARE)))


def training_positions(count: int) -> np.ndarray:
    """Which of count vectors (in row order) train an IVF's k-means: a seeded sample, in order."""
    nlist = ivf_lists(count)
    return np.sort(np.random.default_rng(0).permutation(count)[: nlist * TRAIN_POINTS_PER_LIST])


def _trained_ivf(kind: str, sample: np.ndarray, count: int, nprobe: int | None) -> faiss.IndexIVF:
    """An empty IVF (Flat or half floats) for count vectors whose lists are k-means centroids of sample."""
    dim, nlist = sample.shape[1], ivf_lists(count)
    quantizer = faiss.IndexFlatIP(dim)
    ivf: faiss.IndexIVF
    if kind == "ivf-fp16":
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    else:
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # not in faiss's stubs; vectors_of()
    ivf.cp.niter = KMEANS_ITERATIONS
    logger.info("training %s: %d lists on %d vectors", kind, nlist, len(sample))
    ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
    ivf.nprobe = ivf_probes(nlist) if nprobe is None else min(nprobe, nlist)
    return ivf


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
    def build(
        cls, vectors: np.ndarray, ids: np.ndarray, kind: str = "auto", *, nprobe: int | None = None
    ) -> VectorIndex:
        """Build the right index for this many vectors (training IVF on them if needed); an IVF
        probes ivf_probes(nlist) lists unless nprobe says otherwise."""
        index = cls.trained(kind, vectors.shape[1], len(vectors), lambda positions: vectors[positions], nprobe=nprobe)
        index.add(vectors, ids)
        return index

    @classmethod
    def trained(
        cls,
        kind: str,
        dim: int,
        count: int,
        sample_of: Callable[[np.ndarray], np.ndarray],
        *,
        nprobe: int | None = None,
    ) -> VectorIndex:
        """An empty index ready for count vectors; IVF kinds train on sample_of(positions), the
        vectors at those positions of the row-ordered whole (so that a caller can read just them)."""
        concrete = choose_kind(kind, count)
        if concrete == "flat" or not count:  # nothing to train on: exact until there is
            return cls.empty(dim)
        return cls(_trained_ivf(concrete, sample_of(training_positions(count)), count, nprobe), concrete)

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
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.kind in IVF_KINDS:  # IVF's hashtable direct map removes only by an explicit id array
            return int(self._index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))))
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of rows (each must be present), from memory: no store read."""
        if not len(rows):
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(np.ascontiguousarray(rows, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None) -> Neighbours:
        """Top-k rows by inner product for each query, optionally only among allowed rows."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, len(self))) if len(self) else 1
        params: faiss.SearchParameters | None = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed.astype(np.int64))
            # faiss's stubs know neither the SWIG keyword arguments nor IVF's nprobe
            if self.kind in IVF_KINDS:
                params = faiss.SearchParametersIVF(sel=selector, nprobe=self._index.nprobe)  # type: ignore[call-arg, attr-defined]
            else:
                params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, ids = self._index.search(queries, k, params=params)
        return Neighbours(ids=ids, scores=scores)

    def range_search(self, queries: np.ndarray, min_score: float) -> InRange:
        """Every row with inner product >= min_score, per query."""
        # FAISS keeps results strictly above the radius; nudge it down to include equality.
        limits, scores, ids = self._index.range_search(
            np.ascontiguousarray(queries, dtype=np.float32), float(np.nextafter(np.float32(min_score), np.float32(-2)))
        )
        return InRange(limits=limits, ids=ids, scores=scores)

    def ids(self) -> np.ndarray:
        """Every stored row id (for consistency checks)."""
        if self.kind == "flat":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)  # type: ignore[attr-defined]  # IndexIDMap2's
        invlists = self._index.invlists  # type: ignore[attr-defined]  # IndexIVFFlat's, not in faiss's stubs
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(invlists.nlist)
            if invlists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def to_bytes(self) -> memoryview:
        return faiss.serialize_index(self._index).data

    def write_to(self, sink: Sink) -> None:
        """Write what to_bytes returns, a megabyte at a time, without a copy of the index in memory."""
        faiss.write_index(self._index, faiss.PyCallbackIOWriter(sink.write))  # type: ignore[attr-defined]  # not in faiss's stubs

    @classmethod
    def from_bytes(cls, payload: bytes, kind: str) -> VectorIndex:
        # FAISS saves an IVF index's nprobe and direct map with it; a file from before the probed
        # share (every IVF probed 32 lists) is raised to ivf_probes on load.
        index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        if kind in IVF_KINDS:
            ivf = faiss.extract_index_ivf(index)
            ivf.nprobe = max(ivf.nprobe, ivf_probes(ivf.nlist))
        return cls(index, kind)

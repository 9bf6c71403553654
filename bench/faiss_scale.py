"""FAISS by scale: build time, query latency, throughput, recall@10 and memory of each index kind.

For each size N it builds, on the same vectors: an exact flat index; promptsim's own choice,
`search.vectors.VectorIndex.build(..., "auto")`; IVF-Flat (the same IVF, at other nprobe values);
IVF-SQ8 (on the same coarse centroids, so its build time excludes k-means); and HNSW (M=32,
efConstruction=40) at several efSearch values. Each row reports:

- build: seconds to train and add (all threads);
- single-query latency p50/p99 with `faiss.omp_set_num_threads(1)`, as the engine searches
  (flat stops after --latency-seconds, at least 50 queries);
- batch throughput: queries/s searching batches of --batch queries on all threads;
- recall@10 against exact brute force (numpy), counting ties as hits: a returned vector is a
  hit when its exact cosine is >= the 10th exact cosine (the corpus has exact duplicates);
- memory: serialized index bytes per vector, and the RSS growth of the build.

Vectors are real all-MiniLM-L6-v2 embeddings (384-d, unit) read from a promptsim store
(default bench/out/core-index-100000/prompts.sqlite, ~100k prompts; the file is copied to a
temporary directory and opened read-only there). The first --queries/2 of a seeded shuffle are
held out as queries; the rest form the pool. Sizes above the pool are filled with campaign-like
noisy copies: copy = normalize(v + t*u), u a random unit vector orthogonal to the source v and
t = sqrt(1/c^2 - 1) with c uniform in [0.85, 0.95], so each copy has cosine exactly c to its
source. Round r adds one copy of every pool vector (1M = the pool plus 9-10 copies of each).
The other --queries/2 queries are fresh noisy copies (same construction) of random pool
vectors: a new campaign member whose source is indexed. No query is in the index.

The flat scan's floor is the bytes it reads / ~14.7 GB/s per core (docs measurements.md).

Example:
    python bench/faiss_scale.py --sizes 100000 1000000   # writes bench/out/faiss_scale.json, prints a table
    python bench/faiss_scale.py --sizes 20000 --queries 200 --latency-seconds 3   # quick look
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import inspect
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from search import vectors as promptsim_vectors  # noqa: E402
from search.vectors import VectorIndex, faiss_threads  # noqa: E402

logger = logging.getLogger("faiss_scale")

DIM = 384
K = 10
SCAN_BYTES_PER_S = 14.7e9  # one core, measured (docs/measurements.md)
COPY_COSINE = (0.85, 0.95)

Search = Callable[[np.ndarray], np.ndarray]  # queries (n, d) -> ids (n, K)


@dataclass
class Row:
    """One index at one search setting, measured."""

    name: str
    build_s: float
    bytes_per_vector: float
    rss_growth_mib: float
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    latency_queries: int = 0
    batch_qps: float = 0.0
    recall_at_10: float = 0.0
    recall_held_out: float = 0.0  # the real held-out queries (a new prompt)
    recall_copies: float | None = None  # the fresh noisy copies (a new member of an indexed campaign)
    recall_queries: int = 0
    note: str = ""


# -- data -------------------------------------------------------------------------------


def read_store_vectors(store: Path) -> np.ndarray:
    """Every embedding in a promptsim store (a read-only copy of it, so the original is untouched)."""
    from search.store import PromptStore

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "prompts.sqlite"
        shutil.copyfile(store, copy)
        db = PromptStore(copy, readonly=True)
        vectors = np.concatenate([signals.vectors for _, signals in db.iter_signals(DIM, 128)])
        db.close()
    return np.ascontiguousarray(vectors, dtype=np.float32)


def noisy_copies(rng: np.random.Generator, sources: np.ndarray) -> np.ndarray:
    """One unit copy per source with cosine to it uniform in COPY_COSINE."""
    noise = rng.standard_normal(sources.shape, dtype=np.float32)
    noise -= np.sum(noise * sources, axis=1, keepdims=True) * sources
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cosine = rng.uniform(*COPY_COSINE, size=(len(sources), 1)).astype(np.float32)
    out = sources + np.sqrt(1 / cosine**2 - 1) * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def make_dataset(real: np.ndarray, size: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(base vectors of the given size, queries not in it): see the module docstring."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    held_out, pool = real[order[: n_queries // 2]], real[order[n_queries // 2 :]]
    parts, have = [pool[:size]], min(size, len(pool))
    while have < size:
        take = min(size - have, len(pool))
        parts.append(noisy_copies(rng, pool[:take]))
        have += take
    base = np.ascontiguousarray(np.concatenate(parts))
    fresh = noisy_copies(rng, pool[rng.integers(len(pool), size=n_queries - len(held_out))])
    return base, np.ascontiguousarray(np.concatenate((held_out, fresh)))


def exact_top_scores(base: np.ndarray, queries: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """Exact top-K inner products per query (descending), by BLAS matmul over base chunks."""
    best = np.full((len(queries), K), -np.inf, dtype=np.float32)
    for lo in range(0, len(base), chunk):
        scores = queries @ base[lo : lo + chunk].T
        top = np.partition(scores, -K, axis=1)[:, -K:]
        best = np.partition(np.concatenate((best, top), axis=1), -K, axis=1)[:, -K:]
    return -np.sort(-best, axis=1)


def hits_with_ties(ids: np.ndarray, base: np.ndarray, queries: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Per query, the share of the K returned vectors whose exact score reaches the K-th exact score."""
    valid = ids >= 0
    exact = np.einsum("qkd,qd->qk", base[np.where(valid, ids, 0)], queries)
    return (valid & (exact >= top[:, K - 1 : K] - 1e-5)).mean(axis=1)


# -- measuring --------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def serialized_bytes(index: faiss.Index) -> int:
    """Size of faiss.write_index's output, counted without holding it in memory."""
    total = 0

    def count(chunk: bytes) -> None:
        nonlocal total
        total += len(chunk)

    writer = faiss.PyCallbackIOWriter(count)
    faiss.write_index(index, writer)
    del writer
    return total


def timed_build(build: Callable[[], object]) -> tuple[object, float, float]:
    """(built object, seconds, RSS growth in MiB)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back first, or the build reuses it unseen
    before = rss_bytes()
    start = time.perf_counter()
    built = build()
    seconds = time.perf_counter() - start
    return built, seconds, (rss_bytes() - before) / 2**20


def single_query_latency(search: Search, queries: np.ndarray, max_seconds: float) -> tuple[float, float, int]:
    """p50 and p99 milliseconds of one-query searches on one thread (stops after max_seconds, >= 50 queries)."""
    times: list[float] = []
    started = time.perf_counter()
    with faiss_threads(1):
        for i in range(len(queries)):
            t = time.perf_counter()
            search(queries[i : i + 1])
            times.append(time.perf_counter() - t)
            if len(times) >= 50 and time.perf_counter() - started > max_seconds:
                break
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(times)


def batch_search(search: Search, queries: np.ndarray, batch: int) -> tuple[np.ndarray, float]:
    """Ids for every query searched in batches on all threads, and queries per second."""
    start = time.perf_counter()
    ids = np.concatenate([search(queries[lo : lo + batch]) for lo in range(0, len(queries), batch)])
    return ids, len(queries) / (time.perf_counter() - start)


def measure(row: Row, search: Search, base, queries, top, args, *, exact: bool = False) -> Row:
    """Fill latency, throughput and recall of row (an exact scan gets one batch for throughput and recall)."""
    row.p50_ms, row.p99_ms, row.latency_queries = single_query_latency(search, queries, args.latency_seconds)
    n = min(args.batch, len(queries)) if exact else len(queries)
    ids, row.batch_qps = batch_search(search, queries[:n], args.batch)
    hits, held_out = hits_with_ties(ids, base, queries[:n], top[:n]), args.queries // 2
    row.recall_at_10, row.recall_queries = float(hits.mean()), n
    row.recall_held_out, row.recall_copies = (
        float(hits[:held_out].mean()),
        float(hits[held_out:].mean()) if n > held_out else None,  # an exact scan's one batch has none
    )
    logger.info("%-40s p50 %.3f ms, recall %.4f", row.name, row.p50_ms, row.recall_at_10)
    return row


def raw_search(index: faiss.Index) -> Search:
    return lambda q: index.search(q, K)[1]


# -- the candidates ---------------------------------------------------------------------


def flat_rows(base, queries, top, args) -> list[Row]:
    index, seconds, rss = timed_build(lambda: _flat(base))
    row = Row("flat (exact)", seconds, serialized_bytes(index) / len(base), rss)
    return [measure(row, raw_search(index), base, queries, top, args, exact=True)]


def _flat(base: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatIP(DIM)
    index.add(base)
    return index


def promptsim_rows(base, queries, top, args) -> tuple[list[Row], faiss.Index | None]:
    """promptsim's own choice for this size, then its IVF at the other nprobe values."""
    ids = np.arange(len(base), dtype=np.int64)
    chosen, seconds, rss = timed_build(lambda: VectorIndex.build(base, ids, "auto"))
    inner = chosen._index
    describe = f"ivf nlist={inner.nlist} nprobe={inner.nprobe}" if chosen.kind == "ivf" else "flat"
    row = Row(f"promptsim auto -> {describe}", seconds, serialized_bytes(inner) / len(base), rss)
    exact = chosen.kind == "flat"
    rows = [measure(row, lambda q: chosen.search(q, K).ids, base, queries, top, args, exact=exact)]
    if chosen.kind != "ivf":
        chosen, seconds, rss = timed_build(lambda: VectorIndex.build(base, ids, "ivf"))
        inner = chosen._index
    default = inner.nprobe
    for nprobe in args.nprobe:
        inner.nprobe = nprobe
        row = Row(f"ivf-flat nlist={inner.nlist} nprobe={nprobe}", seconds, serialized_bytes(inner) / len(base), rss)
        rows.append(measure(row, lambda q: chosen.search(q, K).ids, base, queries, top, args))
    inner.nprobe = default
    return rows, inner


def sq8_rows(base, queries, top, ivf: faiss.IndexIVF, args) -> list[Row]:
    """IVF-SQ8 on the IVF's coarse centroids (its build time excludes their k-means)."""
    index, seconds, rss = timed_build(lambda: _sq8(base, ivf))
    rows = []
    for nprobe in args.nprobe:
        index.nprobe = nprobe
        row = Row(f"ivf-sq8 nlist={index.nlist} nprobe={nprobe}", seconds, serialized_bytes(index) / len(base), rss)
        row.note = "build excludes k-means (shared with ivf-flat)"
        rows.append(measure(row, raw_search(index), base, queries, top, args))
    return rows


def _sq8(base: np.ndarray, ivf: faiss.IndexIVF) -> faiss.Index:
    quantizer = faiss.IndexFlatIP(DIM)
    quantizer.add(ivf.quantizer.reconstruct_n(0, ivf.nlist))
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, DIM, ivf.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.train(base[np.random.default_rng(1).permutation(len(base))[:65_536]])  # centroids are kept as given
    index.add(base)
    return index


def hnsw_rows(base, queries, top, args) -> list[Row]:
    index, seconds, rss = timed_build(lambda: _hnsw(base))
    rows = []
    for ef in args.ef_search:
        index.hnsw.efSearch = ef
        row = Row(f"hnsw M=32 efC=40 efSearch={ef}", seconds, serialized_bytes(index) / len(base), rss)
        rows.append(measure(row, raw_search(index), base, queries, top, args))
    return rows


def _hnsw(base: np.ndarray) -> faiss.Index:
    index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    index.add(base)
    return index


# -- driving ----------------------------------------------------------------------------


def run_size(real: np.ndarray, size: int, args) -> dict:
    """Every candidate at one size, one after another (each index freed before the next)."""
    load = os.getloadavg()
    base, queries = make_dataset(real, size, args.queries)
    start = time.perf_counter()
    top = exact_top_scores(base, queries)
    logger.info("size %d: exact top-%d of %d queries in %.1f s", size, K, len(queries), time.perf_counter() - start)
    rows = flat_rows(base, queries, top, args)
    ivf_rows, ivf = promptsim_rows(base, queries, top, args)
    rows += ivf_rows
    rows += sq8_rows(base, queries, top, ivf, args)
    del ivf, ivf_rows
    rows += hnsw_rows(base, queries, top, args)
    scanned = size * DIM * 4
    return {
        "size": size,
        "queries": len(queries),
        "load_average_at_start": load,
        "flat_floor_ms": scanned / SCAN_BYTES_PER_S * 1e3,
        "rows": [asdict(r) for r in rows],
    }


def table(result: dict) -> str:
    head = f"N = {result['size']:,}  ({result['queries']} queries; flat floor {result['flat_floor_ms']:.1f} ms)"
    lines = [
        head,
        f"{'index':42} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} {'batch q/s':>10} "
        f"{'recall@10':>9} {'(real':>6} {'copy)':>6} {'B/vec':>7} {'RSS MiB':>8}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['name']:42} {r['build_s']:8.1f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['batch_qps']:10,.0f} "
            f"{r['recall_at_10']:9.4f} {r['recall_held_out']:6.3f} {r['recall_copies'] or float('nan'):6.3f} "
            f"{r['bytes_per_vector']:7.0f} {r['rss_growth_mib']:8.0f}"
        )
    return "\n".join(lines)


def settings() -> dict:
    """promptsim's index settings under test, so the numbers stay traceable."""
    return {
        "faiss": faiss.__version__,
        "threads": faiss.omp_get_max_threads(),
        "IVF_THRESHOLD": promptsim_vectors.IVF_THRESHOLD,
        "nprobe_default": inspect.signature(VectorIndex.build).parameters["nprobe"].default,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries (half real, half fresh copies)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64], help="IVF nprobe values")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256], help="HNSW efSearch values")
    parser.add_argument("--batch", type=int, default=256, help="queries per batch for throughput")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="cap on one row's single-query loop")
    parser.add_argument("--store", type=Path, default=REPO / "bench/out/core-index-100000/prompts.sqlite")
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/faiss_scale.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    real = read_store_vectors(args.store)
    logger.info("%d real vectors from %s", len(real), args.store)
    report = {"settings": settings(), "real_vectors": len(real), "copy_cosine": COPY_COSINE, "sizes": []}
    for size in args.sizes:
        result = run_size(real, size, args)
        report["sizes"].append(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # after each size: a long run keeps what it has
        print(table(result) + "\n", flush=True)


if __name__ == "__main__":
    main()

"""Which FAISS kind an index of this size should use: recall@10, latency and bytes, on its own vectors.

Reads an existing index directory as it is on disk: its `vectors.faiss` (the kind ingest built,
opened as promptsim opens it) and every vector in its store (the truth, read a batch at a time).
Then builds IVF with scalar-quantized codes over the same coarse centroids (8-bit: 4x smaller;
half floats: 2x smaller; the lists are the same, only the codes differ) and measures each
kind, at each nprobe:

- recall@10 against exact inner-product search over every stored vector (ties count as hits:
  the corpus repeats texts), for --queries stored vectors drawn at random (an analyst's search
  by stored id, or a new prompt equal to an old one) and as many noisy copies of others at
  cosine 0.85-0.95 (a new member of a campaign already indexed);
- single-query latency p50/p99 on one FAISS thread, as a served search runs;
- bytes a vector as serialized, and the RSS the index adds.

Example:
    python bench/vector_choice.py --index /data/i4m --out bench/out/vector_choice_4m.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.faiss_scale import (  # noqa: E402
    K,
    exact_top_scores,
    hits_with_ties,
    noisy_copies,
    rss_bytes,
    serialized_bytes,
    single_query_latency,
)
from search.manifest import VECTORS, read_manifest  # noqa: E402
from search.snapshot import read_snapshot  # noqa: E402
from search.store import PromptStore  # noqa: E402
from search.vectors import VectorIndex  # noqa: E402

logger = logging.getLogger("vector_choice")


def store_vectors(index: Path, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, vectors) of every stored prompt, in row order, read a batch at a time into one array."""
    store = PromptStore(index / "prompts.sqlite", readonly=True)
    try:
        count = store.stats()["prompts"]
        rows, vectors, filled = np.zeros(count, np.int64), np.zeros((count, dim), np.float32), 0
        for batch_rows, batch in store.iter_vectors(dim):
            rows[filled : filled + len(batch)], vectors[filled : filled + len(batch)] = batch_rows, batch
            filled += len(batch)
    finally:
        store.close()
    return rows[:filled], vectors[:filled]


CODES = {"ivf-sq8": faiss.ScalarQuantizer.QT_8bit, "ivf-fp16": faiss.ScalarQuantizer.QT_fp16}


def quantized_like(ivf: faiss.IndexIVF, code: str, vectors: np.ndarray, rows: np.ndarray) -> faiss.IndexIVF:
    """IVF with scalar-quantized codes (8-bit or half floats) on ivf's centroids, holding every vector."""
    quantizer = faiss.IndexFlatIP(ivf.d)
    quantizer.add(ivf.quantizer.reconstruct_n(0, ivf.nlist))
    sq8 = faiss.IndexIVFScalarQuantizer(quantizer, ivf.d, ivf.nlist, CODES[code], faiss.METRIC_INNER_PRODUCT)
    sq8.train(vectors[np.random.default_rng(1).permutation(len(vectors))[:65_536]])  # the code ranges only
    for lo in range(0, len(vectors), 200_000):
        sq8.add_with_ids(vectors[lo : lo + 200_000], rows[lo : lo + 200_000])
    return sq8


def measure(name: str, index: faiss.IndexIVF, queries, truth, vectors, position, nprobes, seconds) -> list[dict]:
    """One row per nprobe: recall@10 of stored and copied queries, one-thread latency."""
    out = []
    for nprobe in nprobes:
        index.nprobe = nprobe
        ids = np.concatenate([index.search(queries[lo : lo + 256], K)[1] for lo in range(0, len(queries), 256)])
        hits = hits_with_ties(np.where(ids >= 0, position(ids), -1), vectors, queries, truth)
        half = len(queries) // 2
        p50, p99, n = single_query_latency(lambda q: index.search(q, K)[1], queries, 20.0)
        out.append(
            {
                "index": f"{name} nlist={index.nlist} nprobe={nprobe}",
                "recall_at_10": round(float(hits.mean()), 4),
                "recall_stored": round(float(hits[:half].mean()), 4),
                "recall_copies": round(float(hits[half:].mean()), 4),
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "latency_queries": n,
                "bytes_per_vector": round(serialized_bytes(index) / index.ntotal),
                "build_s": seconds,
            }
        )
        logger.info("%s", out[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="an index directory (read only)")
    parser.add_argument("--queries", type=int, default=1000, help="half stored vectors, half noisy copies [1000]")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "vector_choice.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    manifest = read_manifest(args.index)
    start = time.perf_counter()
    rows, vectors = store_vectors(args.index, manifest.dim)
    logger.info("%d vectors read in %.0f s", len(rows), time.perf_counter() - start)
    rng = np.random.default_rng(0)
    picked = rng.choice(len(vectors), args.queries, replace=False)
    half = args.queries // 2
    queries = np.ascontiguousarray(np.concatenate((vectors[picked[:half]], noisy_copies(rng, vectors[picked[half:]]))))
    start = time.perf_counter()
    truth = exact_top_scores(vectors, queries)
    logger.info("exact top-%d in %.0f s", K, time.perf_counter() - start)

    def position(ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(rows, ids)

    before = rss_bytes()
    header, payload = read_snapshot(args.index / VECTORS)
    opened = VectorIndex.from_bytes(payload, header["kind"])._index
    del payload
    report: dict[str, Any] = {"index": str(args.index), "vectors": len(rows), "dim": manifest.dim}
    report["built_kind"] = header["kind"]
    report["rss_mib"] = {header["kind"]: round((rss_bytes() - before) / 2**20)}
    rows_out = measure(f"{header['kind']} (as ingested)", opened, queries, truth, vectors, position, args.nprobe, None)
    for code in CODES if header["kind"] == "ivf" else ():
        before, start = rss_bytes(), time.perf_counter()
        built = quantized_like(opened, code, vectors, rows)
        seconds = round(time.perf_counter() - start, 1)
        report["rss_mib"][code] = round((rss_bytes() - before) / 2**20)
        rows_out += measure(code, built, queries, truth, vectors, position, args.nprobe, seconds)
        del built
    report["rows"] = rows_out
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for r in rows_out:
        print(
            f"{r['index']:40} recall@10 {r['recall_at_10']:.4f} (stored {r['recall_stored']:.3f}, copies "
            f"{r['recall_copies']:.3f})  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
            f"{r['bytes_per_vector']} B/vector"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

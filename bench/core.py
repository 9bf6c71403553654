"""Core engine benchmark: ingest split by stage, search latency, batch throughput, memory, MinHash speed.

Each corpus size runs in its own process so peak memory is that size's alone. Corpora come
from bench/corpus.py (real background prompts from data/corpora plus synthetic campaigns).

Example:
    python bench/core.py --sizes 10000 100000          # writes bench/out/core.json and prints a table
    python bench/core.py --sizes 2000 --queries 50     # quick look
    python bench/core.py --reuse bench/out/core-index-100000   # reopen + search on the kept 100k index
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_size(size: int, n_queries: int) -> dict:
    """Build a corpus of about `size` prompts, ingest it, and measure search (one process)."""
    from bench.corpus import build_corpus, default_sources, write_corpus
    from indexer.ingest import ingest_files
    from search.embedding import SentenceTransformerEncoder
    from search.index import PromptIndex

    corpus = build_corpus(default_sources(), seed=0, scale=size)
    with tempfile.TemporaryDirectory() as tmp:
        write_corpus(corpus, tmp)
        encoder = SentenceTransformerEncoder()
        encoder.checksum  # load the model outside the timed region  # noqa: B018
        start = time.perf_counter()
        with PromptIndex.open(Path(tmp) / "idx", encoder, writable=True, create=True) as index:
            report = ingest_files(index, [Path(tmp) / "prompts.jsonl"], progress=True)
            kind = index.vectors.kind
        ingest_s = time.perf_counter() - start
        rss_ingest = peak_rss_mib()
        searched = measure_search(Path(tmp) / "idx", encoder, corpus, n_queries)
        kept = REPO / "bench" / "out" / f"core-index-{size}"  # for bench/load.py and --reuse
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(Path(tmp) / "idx", kept)
    n = report.added
    return {
        "size": n,
        "vector_index": kind,
        "ingest_s": round(ingest_s, 1),
        "ingest_per_s": round(n / ingest_s, 1),
        "stage_s": {k: round(v, 1) for k, v in report.seconds.items()},
        "stage_per_s": {k: round(n / v, 1) if v else None for k, v in report.seconds.items()},
        "peak_rss_mib_ingest": round(rss_ingest),
        **searched,
    }


def measure_search(path: Path, encoder, corpus, n_queries: int) -> dict:  # type: ignore[no-untyped-def]
    """Reopen an index (timed), then time single and batch searches over it."""
    from search.engine import SearchEngine
    from search.index import PromptIndex

    start = time.perf_counter()
    index = PromptIndex.open(path, encoder)
    open_s = time.perf_counter() - start
    engine = SearchEngine(index)
    queries = [q["text"] for q in corpus.queries]
    rng = np.random.default_rng(0)
    queries += [corpus.prompts[i]["text"] for i in rng.choice(len(corpus.prompts), n_queries, replace=False)]
    queries = queries[:n_queries]
    engine.similar(queries[0])  # warm-up
    latencies = []
    for text in queries:
        t = time.perf_counter()
        engine.similar(text, k=20)
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    for lo in range(0, len(queries), 64):
        engine.similar_batch(queries[lo : lo + 64], k=20)
    batch_qps = len(queries) / (time.perf_counter() - t)
    disk = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    kind = index.vectors.kind
    index.close()
    lat = np.asarray(latencies) * 1000
    return {
        "vector_index": kind,
        "open_s": round(open_s, 2),
        "search_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "search_p99_ms": round(float(np.percentile(lat, 99)), 1),
        "batch_queries_per_s": round(batch_qps, 1),
        "peak_rss_mib": round(peak_rss_mib()),
        "disk_mib": round(disk / 2**20),
    }


def reuse(path: Path, n_queries: int) -> dict:
    """The search half of run_size over an index a former run kept (its corpus rebuilt by seed)."""
    from bench.corpus import build_corpus, default_sources
    from search.embedding import SentenceTransformerEncoder
    from search.manifest import read_manifest

    size = int(path.name.rsplit("-", 1)[1])
    corpus = build_corpus(default_sources(), seed=0, scale=size)
    encoder = SentenceTransformerEncoder(read_manifest(path).settings.model)
    encoder.checksum  # load the model outside the timed region  # noqa: B018
    return {
        "index": str(path),
        "size": read_manifest(path).counts.get("prompts"),
        "query_runtime": encoder.runtime,  # PROMPTSIM_ONNX=0 measures torch instead
        **measure_search(path, encoder, corpus, n_queries),
    }


def minhash_side_by_side(n_docs: int = 2000) -> dict:
    """Our bulk MinHash vs datasketch's per-shingle update() and update_batch(), same shingles, same run."""
    from datasketch import MinHash

    from bench.corpus import build_corpus, default_sources
    from search.minhash import MinHasher
    from search.normalize import normalize

    texts = [normalize(p["text"]) for p in build_corpus(default_sources(), seed=0, scale="demo").prompts[:n_docs]]

    def shingles(text: str) -> list[bytes]:
        words, raw = text.split(" "), text.encode()
        grams = [" ".join(words[i : i + 3]).encode() for i in range(max(len(words) - 2, 1))]
        return grams + [raw[i : i + 5] for i in range(max(len(raw) - 4, 1))]

    hasher = MinHasher()
    t = time.perf_counter()
    hasher.signatures(texts)
    ours = n_docs / (time.perf_counter() - t)
    subset = texts[: max(n_docs // 10, 50)]
    t = time.perf_counter()
    for text in subset:
        m = MinHash(num_perm=128)
        for s in shingles(text):
            m.update(s)
    per_shingle = len(subset) / (time.perf_counter() - t)
    t = time.perf_counter()
    for text in subset:
        MinHash(num_perm=128).update_batch(shingles(text))
    batch = len(subset) / (time.perf_counter() - t)
    mean_words = float(np.mean([len(t.split()) for t in texts]))
    return {
        "docs": n_docs,
        "mean_words": round(mean_words, 1),
        "promptsim_docs_per_s": round(ours),
        "datasketch_update_docs_per_s": round(per_shingle),
        "datasketch_update_batch_docs_per_s": round(batch),
        "speedup_vs_update": round(ours / per_shingle, 1),
        "speedup_vs_update_batch": round(ours / batch, 1),
    }


def table(results: list[dict], minhash: dict) -> str:
    head = (
        "| prompts | index | ingest/s | embed/s | minhash/s | index/s | open s | search p50 ms | p99 ms "
        "| batch q/s | peak RSS MiB | disk MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = "".join(
        f"| {r['size']:,} | {r['vector_index']} | {r['ingest_per_s']} | {r['stage_per_s']['embed']} | "
        f"{r['stage_per_s']['minhash']} | {r['stage_per_s']['index']} | {r['open_s']} | {r['search_p50_ms']} | "
        f"{r['search_p99_ms']} | {r['batch_queries_per_s']} | {r['peak_rss_mib']} | {r['disk_mib']} |\n"
        for r in results
    )
    mh = (
        f"\nMinHash, {minhash['docs']} demo prompts (mean {minhash['mean_words']} words), word-3 + byte-5 shingles: "
        f"promptsim {minhash['promptsim_docs_per_s']:,} docs/s; datasketch update() "
        f"{minhash['datasketch_update_docs_per_s']:,} docs/s ({minhash['speedup_vs_update']}x); update_batch() "
        f"{minhash['datasketch_update_batch_docs_per_s']:,} docs/s ({minhash['speedup_vs_update_batch']}x)\n"
    )
    return head + rows + mh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200, help="single queries timed per size")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "core.json")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--reuse", type=Path, help="measure reopen and search only, on an index kept by an earlier run (core-index-N)"
    )
    args = parser.parse_args()
    if args.reuse:
        print(json.dumps(reuse(args.reuse, args.queries), indent=2))
        return
    if args.worker:
        print(json.dumps(run_size(args.worker, args.queries)))
        return
    results = []
    for size in args.sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", str(size), "--queries", str(args.queries)],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    minhash = minhash_side_by_side()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "minhash": minhash}, indent=2) + "\n")
    print(table(results, minhash))


if __name__ == "__main__":
    main()

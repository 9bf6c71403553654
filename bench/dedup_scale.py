"""Dedup at scale: cluster N already-ingested prompts; time per stage and peak memory.

Ingesting a million prompts through MiniLM takes hours on two cores, and dedup never
re-embeds, so this benchmark writes the store directly: real texts from bench/corpus.py at
the requested size, real MinHash signatures (whole and head/tail windows, the ingest code
path), and 384-d embeddings from a hashing bag-of-words encoder (a stand-in that gives
realistic neighbour structure at no cost; the MiniLM cost is measured by bench/core.py).
Then it runs the same `run_dedup` the CLI runs, wrapper mining and campaign families included
(with the multilingual family encoder), and reports seconds and peak RSS.

Example:
    python bench/dedup_scale.py --size 1000000       # the issue's target: <= 10 min, <= 8 GiB
    python bench/dedup_scale.py --size 50000         # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DIM = 384


def hashing_vectors(texts: list[str]) -> np.ndarray:
    """Unit bag-of-words vectors: word hash -> one of DIM buckets (a fast embedding stand-in)."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        words = text.split()
        if words:
            # crc32, not hash(): str hashes change per process, and runs must be comparable
            buckets = np.fromiter((zlib.crc32(w.encode()) % DIM for w in words), dtype=np.int64, count=len(words))
            np.add.at(out[i], buckets, 1.0)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return out


def build_store(path: Path, size: int) -> tuple[int, float, tuple[int, int]]:
    from bench.corpus import build_corpus, default_sources
    from search.minhash import MinHasher
    from search.normalize import normalize
    from search.records import Prompt, parse_timestamp
    from search.signals import Signals, minhash_signals
    from search.store import PromptStore

    start = time.perf_counter()
    corpus = build_corpus(default_sources(), seed=0, scale=size)
    store = PromptStore(path)
    hasher = MinHasher()
    batch = 20_000
    for lo in range(0, len(corpus.prompts), batch):
        chunk = corpus.prompts[lo : lo + batch]
        prompts = [Prompt(p["id"], p["text"], p["account_id"], parse_timestamp(p["timestamp"])) for p in chunk]
        normalized = [normalize(p.text) for p in prompts]
        signatures, windows = minhash_signals(normalized, hasher)
        store.upsert(prompts, Signals(hashing_vectors(normalized), signatures, windows))
        print(f"stored {lo + len(chunk):,} / {len(corpus.prompts):,}", file=sys.stderr)
    store.close()
    return len(corpus.prompts), time.perf_counter() - start, default_bands()


def default_bands() -> tuple[int, int]:
    """The (bands, rows) datasketch picks for the index's LSH threshold, as dedup uses."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    return int(lsh.b), int(lsh.r)


def stored_size(db: Path) -> int:
    from search.store import PromptStore

    store = PromptStore(db)
    try:
        return int(store.stats()["prompts"])
    finally:
        store.close()


def dedup_only(db: Path, bands: tuple[int, int], families: bool = True) -> dict:
    """Run dedup over an existing store (in its own process, so peak RSS is dedup's alone)."""
    from indexer.dedup import DedupSettings, Source, run_dedup
    from search.store import PromptStore

    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample_rss() -> None:  # where the peak is, stage by stage
        while not done.wait(0.25):
            with open("/proc/self/statm") as statm:
                samples.append((time.perf_counter(), int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")))

    threading.Thread(target=sample_rss, daemon=True).start()
    start = time.perf_counter()
    encoder = None
    if families:
        from search.family_encoder import load_family_encoder

        encoder = load_family_encoder()
    result = run_dedup(
        Source(PromptStore(db), DIM, 128, bands), settings=DedupSettings(families=families), encoder=encoder
    )
    done.set()
    peaks, edge = {}, start
    for stage, seconds in result.stats["seconds"].items():
        inside = [rss for t, rss in samples if edge <= t < edge + seconds]
        peaks[stage] = round(max(inside, default=0) / 2**30, 2)
        edge += seconds
    return {
        "dedup_s": round(time.perf_counter() - start, 1),
        "stages_s": result.stats["seconds"],
        "stage_peak_rss_gib": peaks,
        "clusters": result.stats["clusters"],
        "flagged": result.stats["flagged"],
        "edges": result.stats["edges"],
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "dedup_scale.json")
    parser.add_argument(
        "--work", type=Path, help="keep the store in this directory and reuse it on the next run (same --size)"
    )
    parser.add_argument("--dedup-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bands", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--families",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mine wrappers and build campaign families, as dedup does by default (default: on)",
    )
    args = parser.parse_args()
    if args.dedup_only:
        print(json.dumps(dedup_only(args.dedup_only, tuple(args.bands), args.families)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db = work / f"prompts-{args.size}.sqlite"
        if db.exists():
            n, build_s, bands = stored_size(db), None, default_bands()
        else:
            n, build_s, bands = build_store(db, args.size)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--dedup-only",
                str(db),
                "--bands",
                *map(str, bands),
                "--families" if args.families else "--no-families",
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        build = {"store_build_s": round(build_s, 1)} if build_s is not None else {"store_reused": str(db)}
        report = {"prompts": n, "families": args.families, **build, **json.loads(done.stdout.splitlines()[-1])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

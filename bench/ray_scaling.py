"""Scaling of the Ray engine: the same corpus with 1 and 2 local workers, per-stage times and efficiency.

Each run starts a fresh local Ray cluster with N CPUs and N embedding actors, ingests the
corpus (a directory of JSONL parts) into a new index and runs the Ray dedup on it. The
single-node ingest + dedup runs once on the same corpus as the reference, and every Ray
run's clusters are checked against it.

Embedding: MiniLM embeds ~50 prompts/s per machine here, so `--encoder fake` (a hashing
bag-of-words stand-in, stated in the output) measures the pipeline; `--encoder minilm` the model.

Example:
    python bench/ray_scaling.py --prompts 20000 --encoder fake
    python bench/ray_scaling.py --prompts 2000 --encoder minilm --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_parts(prompts: int, out: Path, files: int = 8) -> Path:
    """prompts labelled corpus rows (bench/corpus.py at this scale, seed 0) as JSONL parts."""
    from bench.corpus import build_corpus, default_sources

    rows = build_corpus(default_sources(), seed=0, scale=prompts).prompts
    out.mkdir(parents=True, exist_ok=True)
    size = -(-len(rows) // files)
    for n in range(files):
        with open(out / f"part-{n:03d}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[n * size : (n + 1) * size])
    return out


def encoder_factory(kind: str):
    if kind == "fake":
        from promptsim.testing import FakeEncoder

        return FakeEncoder(384), partial(_fake)
    from search.embedding import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder()
    return encoder, partial(_minilm, encoder.name)


def _fake(device: str):
    from promptsim.testing import FakeEncoder

    return FakeEncoder(384)


def _minilm(model: str, device: str):
    from search.embedding import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model, device=device)


def single_node(parts: Path, work: Path, kind: str) -> tuple[dict, list]:
    from indexer.dedup import Source, run_dedup
    from indexer.ingest import ingest_files
    from search.index import PromptIndex

    encoder, _ = encoder_factory(kind)
    start = time.perf_counter()
    with PromptIndex.open(work / "local", encoder, writable=True, create=True) as index:
        report = ingest_files(index, sorted(parts.glob("*.jsonl")), progress=False)
    ingested = time.perf_counter()
    with PromptIndex.open(work / "local", None) as index:
        result = run_dedup(Source.of(index))
    done = time.perf_counter()
    stages = {
        "ingest": ingested - start,
        "dedup": done - ingested,
        **{f"dedup.{k}": v for k, v in result.stats["seconds"].items()},
    }
    return {"added": report.added, "seconds": _rounded(stages)}, _members(result)


def ray_run(parts: Path, work: Path, kind: str, workers: int) -> tuple[dict, list]:
    import ray

    from indexer.dedup import Source
    from indexer.distributed import ray_cluster
    from indexer.distributed.dedup import ray_dedup
    from indexer.distributed.ingest import RayIngestOptions, ray_ingest
    from search.index import PromptIndex

    encoder, factory = encoder_factory(kind)
    target = work / f"ray{workers}"
    start = time.perf_counter()
    with ray_cluster(num_cpus=workers) as cluster:
        joined = time.perf_counter()
        with PromptIndex.open(target, encoder, writable=True, create=True) as index:
            report = ray_ingest(index, [str(parts)], factory, cluster, options=RayIngestOptions(embed_actors=workers))
        ingested = time.perf_counter()
        with PromptIndex.open(target, None) as index:
            result = ray_dedup(Source.of(index), cluster, block_rows=5000)
        done = time.perf_counter()
    assert not ray.is_initialized()
    stages = {
        "start_cluster": joined - start,
        "ingest": ingested - joined,
        "dedup": done - ingested,
        **{f"ingest.{k}": v for k, v in report.seconds.items()},
        **{f"dedup.{k}": v for k, v in result.stats["seconds"].items()},
    }
    return {"workers": workers, "added": report.added, "seconds": _rounded(stages)}, _members(result)


def _members(result) -> list:
    return sorted(sorted(c["rows"].tolist()) for c in result.clusters)


def _rounded(d: dict) -> dict:
    return {k: round(v, 2) for k, v in d.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=20000, help="corpus size (bench/corpus.py scale)")
    parser.add_argument(
        "--encoder", choices=["fake", "minilm"], default="fake", help="embedding model (fake: stand-in)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local worker counts to compare")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "ray_scaling.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    try:
        parts = make_parts(args.prompts, work / "parts")
        reference, members = single_node(parts, work, args.encoder)
        runs = []
        for n in args.workers:
            run, found = ray_run(parts, work, args.encoder, n)
            run["same_clusters_as_single_node"] = found == members
            runs.append(run)
            print(json.dumps(run), file=sys.stderr)
        base = runs[0]["seconds"]
        for run in runs:
            n = run["workers"] / runs[0]["workers"]
            run["speedup"] = {
                s: round(base[s] / run["seconds"][s], 2) for s in ("ingest", "dedup") if run["seconds"][s]
            }
            run["efficiency"] = {s: round(v / n, 2) for s, v in run["speedup"].items()}
        body = {
            "prompts": reference["added"],
            "encoder": args.encoder if args.encoder == "minilm" else "fake (hashing bag-of-words stand-in, dim 384)",
            "cpus_on_machine": os.cpu_count(),
            "single_node": reference,
            "ray": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(body, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

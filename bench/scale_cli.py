"""The real CLI path at scale: `promptsim ingest`, then `promptsim dedup`, each in its own process.

For each step: wall time, prompts per second and the peak RSS of the largest process
(wait4's ru_maxrss: the step's main process or one of its workers, whichever peaked
highest). Then the index as a user reopens it: open time and RSS, each structure's bytes a
prompt in memory and on disk, and search latency through the library (p50, p99).

Example:
    python bench/corpus.py --out bench/out/c1m --scale 1000000 --seed 3
    python bench/scale_cli.py --corpus bench/out/c1m --index bench/out/scale-1m --workers 2 --no-families
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CLI = [sys.executable, "-c", "from api.cli import main; main()"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def timed(command: list[str]) -> dict[str, Any]:
    """Run command; its wall time and the peak RSS of its largest process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{command[3:5]} failed with exit {proc.returncode}")
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def reopened(index: Path, queries: list[str]) -> dict[str, Any]:
    """Open the index as the library does, and measure what each structure holds and how searches go."""
    import promptsim

    def rss() -> float:
        status = Path("/proc/self/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    before, start = rss(), time.perf_counter()
    opened = promptsim.open_index(index)
    open_s, open_rss = time.perf_counter() - start, rss() - before
    n = int(opened.counts()["prompts"])
    start = time.perf_counter()
    table = opened.signatures  # read when a search first needs it: timed on its own
    table_s = time.perf_counter() - start
    memory = {  # the arrays each structure holds (FAISS's IVF lists are about its file's size)
        "lsh": opened.lsh.nbytes(),
        "window_lsh": opened.window_lsh.nbytes(),
        "signature_table": table._signatures.nbytes + table._slot_by_row.nbytes,
        "row_facts": opened.facts._account.nbytes + opened.facts._time.nbytes,
    }
    disk = {p.name: p.stat().st_size for p in index.iterdir() if p.is_file() and p.stat().st_size > 1024}
    promptsim.search(opened, queries[0])  # warm
    latencies = []
    for text in queries:
        t = time.perf_counter()
        promptsim.search(opened, text, k=20)
        latencies.append(time.perf_counter() - t)
    kind = opened.vectors.kind
    opened.close()
    lat = np.asarray(latencies) * 1000
    return {
        "prompts": n,
        "vector_index": kind,
        "open_s": round(open_s, 1),
        "open_rss_mib": round(open_rss),
        "signature_table_s": round(table_s, 1),
        "rss_after_searches_mib": round(rss()),
        "memory_bytes_per_prompt": {k: round(v / n) for k, v in memory.items()},
        "disk_bytes_per_prompt": {k: round(v / n) for k, v in sorted(disk.items())},
        "search_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "search_p99_ms": round(float(np.percentile(lat, 99)), 1),
        "queries": len(queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="a bench/corpus.py output directory")
    parser.add_argument("--index", type=Path, required=True, help="index directory to create (must not exist)")
    parser.add_argument("--workers", type=int, default=2, help="ingest worker processes [2]")
    parser.add_argument("--queries", type=int, default=200, help="searches to time on the reopened index [200]")
    parser.add_argument(
        "--no-families", action="store_true", help="dedup without family mining (it does not finish at 1M yet)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "scale_cli.json")
    args = parser.parse_args()
    if args.index.exists():
        raise SystemExit(f"{args.index} exists; give a new directory")
    prompts = args.corpus / "prompts.jsonl"
    n = sum(1 for _ in prompts.open())
    report: dict[str, Any] = {"corpus": str(args.corpus), "input_prompts": n}
    ingest = [*CLI, "ingest", str(prompts), "--index", str(args.index), "--model", "static-minilm"]
    report["ingest"] = timed([*ingest, "--workers", str(args.workers)])
    report["ingest"]["prompts_per_s"] = round(n / report["ingest"]["seconds"])
    families = ["--no-families"] if args.no_families else []
    clusters = str(args.index.parent / "clusters.jsonl")
    report["dedup"] = timed([*CLI, "dedup", "--index", str(args.index), "--out", clusters, *families])
    with prompts.open() as handle:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.queries * 50), handle)][::50]
    report["reopened"] = reopened(args.index, texts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""A 4M-prompt history through the real CLI, then one more day on top of it, deduplicated against it.

Steps (each its own process, as a user runs them; pick some with --steps, the report is merged
into --out so a long run can be taken in parts):

- `history`: `promptsim ingest HISTORY --model static-minilm --workers 2` into a new index;
- `day`: `promptsim ingest DAY` into the same index (today's traffic over the 4M history);
- `reopen`: open the index as the library does: open time and RSS, each structure's bytes a
  prompt in memory and on disk, and search latency p50/p99 (k = 20) through `promptsim.search`;
- `dedup-day`: `promptsim dedup --since DAY --until DAY+1 --history`: the day's prompts with
  their siblings from the whole history (indexer/history.py).
Recall@10 of each FAISS kind at this size is `bench/vector_choice.py --index I4M`.

Each CLI step reports its wall time, prompts a second, the peak RSS of its largest process
(wait4) and the main process's RSS sampled every 5 s.

Example:
    python bench/replicate_corpus.py --corpus C1M --copies 4 --out C4M   # then split C4M at its last day
    python bench/scale_4m.py --history C4M/history.jsonl --day C4M/day.jsonl --index I4M \\
        --day-start 2026-11-20 --steps history day reopen dedup-day
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scale_cli import CLI, ENV, reopened  # noqa: E402

STEPS = ("history", "day", "reopen", "dedup-day")


def rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS")), None)


def timed(command: list[str], log: Path) -> dict[str, Any]:
    """Run command (output to log); wall time, peak RSS of its largest process, RSS samples."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=ENV, stdout=out, stderr=subprocess.STDOUT)
    samples: list[tuple[float, float]] = []

    def sample() -> None:
        while proc.returncode is None:
            value = rss_mib(proc.pid)
            if value is not None:
                samples.append((round(time.perf_counter() - start), round(value)))
            time.sleep(5)

    threading.Thread(target=sample, daemon=True).start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{command[3:5]} failed with exit {proc.returncode}; see {log}")
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "rss_samples_mib": samples[:: max(1, len(samples) // 60)],  # about 60 points
    }


def lines_in(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def ingest(source: Path, index: Path, workers: int, log: Path) -> dict[str, Any]:
    command = [*CLI, "ingest", str(source), "--index", str(index), "--model", "static-minilm"]
    result = timed([*command, "--workers", str(workers)], log)
    result["prompts"] = lines_in(source)
    result["prompts_per_s"] = round(result["prompts"] / result["seconds"])
    return result


def sample_queries(path: Path, count: int) -> list[str]:
    """Every 50th text of the file's first count*50 lines."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for _, line in zip(range(count * 50), handle)][::50]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=Path, required=True, help="the history's prompts.jsonl")
    parser.add_argument("--day", type=Path, required=True, help="the last day's prompts.jsonl")
    parser.add_argument("--day-start", required=True, help="the day's first instant (ISO-8601), e.g. 2026-11-20")
    parser.add_argument("--index", type=Path, required=True, help="index directory (history: must not exist)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--workers", type=int, default=2, help="ingest worker processes [2]")
    parser.add_argument("--queries", type=int, default=200, help="searches to time on the reopened index [200]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "scale_4m.json")
    args = parser.parse_args(argv)
    report: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    logs = args.out.parent
    logs.mkdir(parents=True, exist_ok=True)
    day_start = datetime.fromisoformat(args.day_start).replace(tzinfo=UTC)
    for step in args.steps:
        print(f"{datetime.now(UTC):%H:%M:%S} {step} ...", flush=True)
        if step == "history":
            if args.index.exists():
                raise SystemExit(f"{args.index} exists; the history goes into a new directory")
            report[step] = ingest(args.history, args.index, args.workers, logs / "scale_4m-history.log")
        elif step == "day":
            report[step] = ingest(args.day, args.index, args.workers, logs / "scale_4m-day.log")
        elif step == "reopen":
            report[step] = reopened(args.index, sample_queries(args.day, args.queries))
        elif step == "dedup-day":
            until = (day_start + timedelta(days=1)).isoformat()
            clusters = args.out.parent / "scale_4m-day-clusters.jsonl"
            command = [*CLI, "-v", "dedup", "--index", str(args.index), "--out", str(clusters)]
            command += ["--since", day_start.isoformat(), "--until", until, "--history", "--json"]
            report[step] = timed(command, logs / "scale_4m-dedup-day.log")
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # each step kept as soon as it ends
        print(json.dumps({step: {k: v for k, v in report[step].items() if k != "rss_samples_mib"}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Kill loop over every write path: SIGKILL promptsim at random instants, search all along, lose nothing.

Design (promptsim/killloop.py has the full note). What: a fresh index served by `promptsim serve`,
a searcher thread on /v1/search, and one write at a time drawn from a weighted mix of API ingest,
CLI ingest, API and CLI delete, purge, dedup, snapshot (CLI and API), restore (CLI and API) and
verdicts; each run is SIGKILLed at a random instant with probability --kill-rate (the server for
an HTTP write, the CLI process for a CLI one), and a killed server is restarted at once.
Checks, after every kill, every few runs and at the end: acknowledged ingests and verdicts
present, acknowledged deletes and purges still deleted, no id never sent, none twice, store =
FAISS = LSHs (PromptIndex.verify), clusters whole (the last dedup run's, one transaction), and a
killed restore leaving the index as before or as restored; restart -> /readyz time per kill;
search errors outside the server's down time. Not covered: power loss (fsync ordering),
concurrent writers, several server workers, Ray; disk full and a read-only directory are tests
(tests/api/test_disk_faults.py).

Example:
    nice -n 19 .venv/bin/python bench/crashloop.py --minutes 25 --out bench/out/killloop.json
    nice -n 19 .venv/bin/python bench/crashloop.py --minutes 3 --mix restore=2,snapshot=2,api_ingest=1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from promptsim.killloop import DEFAULT_MIX, KillLoop, parse_mix, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to loop [default: 5]")
    parser.add_argument(
        "--mix",
        default="",
        help="write paths and weights, e.g. api_ingest=4,restore=1 (unnamed paths are left out) [default: "
        + ",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items())
        + "]",
    )
    parser.add_argument("--kill-rate", type=float, default=0.6, help="share of runs SIGKILLed [default: 0.6]")
    parser.add_argument("--check-every", type=int, default=5, help="check every N runs and after kills [default: 5]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="model of the index (e.g. static-minilm) [default: promptsim's default]")
    parser.add_argument("--work", type=Path, help="keep the index and logs here [default: a temporary directory]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "killloop.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        loop = KillLoop(
            args.work or Path(tmp) / "work",
            seed=args.seed,
            mix=parse_mix(args.mix),
            kill_rate=args.kill_rate,
            check_every=args.check_every,
            model=args.model,
            log=lambda line: print(time.strftime("%H:%M:%S"), line, file=sys.stderr, flush=True),
        )
        report = loop.run(args.minutes * 60)
    report["command"] = " ".join(sys.argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".txt").write_text(table(report) + "\n")
    print(table(report))
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()

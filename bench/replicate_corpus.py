"""Grow a corpus from bench/corpus.py into a longer history: earlier fortnights of the same traffic.

bench/corpus.py takes ~12 minutes a million prompts here; a 4M-prompt history built by it would
take most of an hour. This writes `--copies` copies of one corpus instead, each shifted one span
(the corpus's own length, 14 days) further into the past, oldest first, so the output stays in
time order and its last span is the original, untouched. In every earlier copy, accounts and ids
get a copy suffix (other people, other campaigns' accounts), and half the texts get one small
edit (a word dropped, doubled, or two neighbours swapped), so that a history is not the same
strings four times over: near-duplicates across fortnights, as real traffic repeats itself.

The original's last day is then "today": ingest everything before it as the history, then that
day on top, and dedup the day against the history (bench/scale_4m.py).

Example:
    python bench/replicate_corpus.py --corpus /data/c1m --copies 4 --out /data/c4m
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm


def edited(text: str, rng: random.Random) -> str:
    """The text with one small word-level edit (or unchanged, half the time)."""
    words = text.split(" ")
    if len(words) < 4 or rng.random() < 0.5:
        return text
    at = rng.randrange(len(words) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        del words[at]
    elif kind == 1:
        words.insert(at, words[at])
    else:
        words[at], words[at + 1] = words[at + 1], words[at]
    return " ".join(words)


def shifted(stamp: str, days: int) -> str:
    """An ISO-8601 'Z' timestamp moved `days` days earlier."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def copy_of(record: dict[str, Any], copy: int, span_days: int, rng: random.Random) -> dict[str, Any]:
    """Record as it appears in copy number `copy` (0: the original)."""
    if copy == 0:
        return record
    return {
        **record,
        "id": f"{record['id']}.c{copy}",
        "account_id": f"{record['account_id']}.c{copy}",
        "timestamp": shifted(record["timestamp"], copy * span_days),
        "text": edited(record["text"], rng),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="a bench/corpus.py output directory")
    parser.add_argument("--copies", type=int, default=4, help="copies in all, the original included")
    parser.add_argument("--span-days", type=int, default=14, help="how far each copy moves back")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source = args.corpus / "prompts.jsonl"
    lines = source.read_text(encoding="utf-8").split("\n")  # not splitlines(): texts hold U+2028
    lines = [line for line in lines if line]
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(args.out / "prompts.jsonl", "w", encoding="utf-8") as out:
        for copy in range(args.copies - 1, -1, -1):  # oldest first: the file stays in time order
            rng = random.Random(f"{args.seed}:{copy}")
            for line in tqdm(lines, desc=f"copy {copy}", unit="prompt", mininterval=2):
                record = copy_of(json.loads(line), copy, args.span_days, rng)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
    print(f"wrote {written} prompts ({args.copies} copies of {len(lines)}) to {args.out / 'prompts.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One table from the families-suite reports: every class, per backend and seed, beside the plain pipeline.

Reads the report.json files `bench/evaluate.py --suite families` writes (one per backend and
seed) and prints the headline metrics and the per-class table in Markdown.

Example:
    python bench/evaluate.py --suite families --scale eval --seed 0                          # MiniLM + baseline
    python bench/evaluate.py --suite families --scale eval --seed 0 --model static-minilm --no-baseline
    python bench/family_table.py --scale eval --seeds 0 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BACKENDS = {"MiniLM": "", "static": "-static-minilm"}
HEADLINE = (
    ("campaigns detected", "campaigns_detected"),
    ("campaign account recall", "campaign_account_recall"),
    ("benign-account FPR", "benign_account_fpr"),
    ("benign accounts flagged", "benign_accounts_flagged"),
    (
        "popular / app / jailbreak groups flagged",
        ("popular_groups_flagged", "app_groups_flagged", "jailbreak_groups_flagged"),
    ),
    (
        "team / step-by-step users / passage apps flagged",
        ("team_groups_flagged", "cot_users_groups_flagged", "passage_app_groups_flagged"),
    ),
    ("pair precision / recall / F1", ("pairwise_precision", "pairwise_recall", "pairwise_f1")),
    ("sibling precision@20", "sibling_precision_at_20"),
)


def reports(scale: str, seeds: list[int]) -> dict[tuple[str, int], dict]:
    """(backend, seed) -> report, for those that exist."""
    found = {}
    for name, suffix in BACKENDS.items():
        for seed in seeds:
            path = REPO / "bench" / "out" / f"eval-families-{scale}-{seed}{suffix}" / "report.json"
            if path.exists():
                found[(name, seed)] = json.loads(path.read_text())
    return found


def cell(metrics: dict, key: str | tuple[str, ...]) -> str:
    if isinstance(key, tuple):
        return " / ".join(str(metrics.get(k, "-")) for k in key)
    if key == "campaigns_detected":
        return f"{metrics[key]}/{metrics['campaigns']}"
    return str(metrics.get(key, "-"))


def headline(found: dict[tuple[str, int], dict]) -> list[str]:
    columns = list(found)
    baselines = [(seed, r["baseline"]) for (_, seed), r in found.items() if "baseline" in r]
    head = "| metric | " + " | ".join(f"{b}, seed {s}" for b, s in columns)
    head += "".join(f" | plain pipeline, seed {s}" for s, _ in baselines) + " |"
    lines = [head, "|" + "---|" * (1 + len(columns) + len(baselines))]
    for label, key in HEADLINE:
        row = [cell(found[c]["promptsim"], key) for c in columns] + [cell(b, key) for _, b in baselines]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return lines


def per_class(found: dict[tuple[str, int], dict]) -> list[str]:
    columns = list(found)
    kinds = sorted({k for r in found.values() for k in r["promptsim"]["by_type"]})
    lines = [
        "| class | " + " | ".join(f"{b} s{s}: detected, recall, pair F1, p@20" for b, s in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for kind in kinds:
        cells = []
        for c in columns:
            m = found[c]["promptsim"]
            t = m["by_type"].get(kind, {})
            p20 = m.get("sibling_precision_by_type", {}).get(kind, "-")
            cells.append(
                f"{t.get('detected', '-')}, {t.get('account_recall', '-')}, {t.get('pairwise_f1', '-')}, {p20}"
            )
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="eval")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 3])
    args = parser.parse_args()
    found = reports(args.scale, args.seeds)
    if not found:
        parser.error("no reports yet: run bench/evaluate.py --suite families first (see the examples)")
    print("\n".join(headline(found)) + "\n\n" + "\n".join(per_class(found)))


if __name__ == "__main__":
    main()

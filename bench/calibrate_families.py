"""Calibrate the campaign score on benign traffic only: intent's two points, then the flag threshold.

For each seed (never the evaluation seed 0), builds the families suite (every campaign class and
the hard negatives: a team's template, step-by-step users, passage apps, popular prompts, apps,
jailbreak families), ingests it, runs dedup with every cluster scored, and keeps the clusters
whose members are mostly benign. Then:
1. intent: the median and the 99th percentile of the benign clusters' raw intent cosines become
   the points that map to 0 and 1 (search/intent.py: BENIGN_MEDIAN, BENIGN_P99);
2. threshold: with intent so calibrated, the lowest flag threshold at which the benign accounts
   in benign clusters scoring at or above it stay within the target false-positive rate, pooled
   over every seed (indexer/features.py: DEFAULT_FLAG_THRESHOLD).
Campaign clusters are never looked at.

Example:
    python bench/calibrate_families.py --seeds 1 2 --model static-minilm
    python bench/calibrate_families.py --seeds 1 --model all-MiniLM-L6-v2 --target-fpr 0.001
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.corpus import build_corpus, default_sources, write_corpus  # noqa: E402
from bench.evaluate import ingest_corpus, run_promptsim  # noqa: E402


def benign_clusters(clusters: list[dict], truth: dict) -> list[dict]:
    """Clusters whose members are mostly benign (what the false-positive rate is made of)."""
    labels = truth["prompts"]
    return [c for c in clusters if sum(labels.get(m) == "benign" for m in c["members"]) > len(c["members"]) / 2]


def intent_points(clusters: list[dict]) -> tuple[float, float]:
    """Median and 99th percentile of the benign clusters' raw intent cosines."""
    raw = np.asarray([c["features"]["intent_raw"] for c in clusters if "intent_raw" in c["features"]])
    return float(np.percentile(raw, 50)), float(np.percentile(raw, 99))


def rescore(cluster: dict, low: float, high: float) -> float:
    """The cluster's campaign score with intent mapped through (low, high)."""
    from indexer.features import campaign_score

    features = dict(cluster["features"])
    features["intent"] = float(np.clip((features["intent_raw"] - low) / max(high - low, 1e-6), 0.0, 1.0))
    return campaign_score(features)


def threshold_for(runs: list[tuple[list[dict], dict]], low: float, high: float, target_fpr: float) -> dict:
    """Lowest threshold keeping the pooled benign-account FPR within target, and the benign scores near it."""
    scored = []
    benign_total = 0
    for clusters, truth in runs:
        owner = truth["prompt_accounts"]
        benign_total += sum(1 for info in truth["accounts"].values() if not info["campaign"])
        for c in benign_clusters(clusters, truth):
            accounts = {owner[m] for m in c["members"] if not truth["accounts"][owner[m]]["campaign"]}
            scored.append((rescore(c, low, high), len(accounts), c["template"][:80]))
    scored.sort(reverse=True)
    allowed, flagged, threshold = target_fpr * benign_total, 0, 0.0
    for score, accounts, _ in scored:
        if flagged + accounts > allowed:
            threshold = round(score + 1e-4, 4)
            break
        flagged += accounts
    return {
        "threshold": threshold,
        "benign_accounts": benign_total,
        "allowed_false_positive_accounts": round(allowed, 1),
        "top_benign_clusters": [{"score": s, "accounts": a, "template": t} for s, a, t in scored[:8]],
    }


def run_seed(seed: int, scale: str, model: str) -> tuple[list[dict], dict]:
    from search.embedding import SentenceTransformerEncoder

    size = int(scale) if scale.isdigit() else scale
    corpus = build_corpus(default_sources(), seed=seed, scale=size, suite="families")
    corpus.truth["prompt_accounts"] = {p["id"]: p["account_id"] for p in corpus.prompts}
    suffix = "" if model == "all-MiniLM-L6-v2" else f"-{Path(model).name}"
    work = REPO / "bench" / "out" / f"eval-families-{scale}-{seed}{suffix}"
    encoder = SentenceTransformerEncoder(model)
    if not (work / "idx" / "manifest.json").exists():
        write_corpus(corpus, work)
        print(f"seed {seed}: ingest {ingest_corpus(work, corpus, encoder):.0f} s", file=sys.stderr)
    return run_promptsim(work, corpus, encoder, 0.0)["clusters"], corpus.truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="corpus seeds (0 is the evaluation's)")
    parser.add_argument("--scale", default="eval", help="eval (~45k prompts) or a prompt count")
    parser.add_argument("--model", default="static-minilm", help="the index's embedding model")
    parser.add_argument("--target-fpr", type=float, default=0.001)
    args = parser.parse_args()
    if 0 in args.seeds:
        parser.error("seed 0 is the evaluation seed: calibrate on others")
    runs = [run_seed(seed, args.scale, args.model) for seed in args.seeds]
    low, high = intent_points([c for clusters, truth in runs for c in benign_clusters(clusters, truth)])
    intent = {"benign_median": round(low, 4), "benign_p99": round(high, 4)}
    report = {"seeds": args.seeds, "model": args.model, "intent": intent}
    report["flag"] = threshold_for(runs, low, high, args.target_fpr)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

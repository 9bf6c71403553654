"""Detection quality: promptsim vs the plain baseline on a labelled corpus, every metric, one run.

Builds the corpus with bench/corpus.py (real background from data/corpora plus campaign
generators), ingests it, runs `dedup` and batch search, computes the metrics of
docs/evaluation.md for promptsim and for the baseline (bench/baseline.py) on the
same corpus, and prints them side by side. --calibrate instead prints the flag threshold
that keeps the benign-account false-positive rate at the target on this corpus's benign data.

Example:
    python bench/evaluate.py --scale eval --seed 0          # the headline numbers
    python bench/evaluate.py --scale eval --seed 1 --calibrate --target-fpr 0.001
    python bench/evaluate.py --scale eval --seed 0 --model static-minilm --no-baseline   # the bulk backend
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.corpus import build_corpus, default_sources, write_corpus  # noqa: E402
from bench.metrics import HEADLINE_METRICS, cluster_metrics, sibling_metrics  # noqa: E402


def ingest_corpus(work: Path, corpus, encoder) -> float:  # type: ignore[no-untyped-def]
    from indexer.ingest import ingest_files
    from search.index import PromptIndex

    start = time.perf_counter()
    with PromptIndex.open(work / "idx", encoder, writable=True, create=True) as index:
        ingest_files(index, [work / "prompts.jsonl"])
    return time.perf_counter() - start


def run_promptsim(work: Path, corpus, encoder, flag_threshold: float | None) -> dict:  # type: ignore[no-untyped-def]
    from indexer.campaigns import cluster_lines, nightly
    from indexer.dedup import DedupSettings
    from search.engine import SearchEngine
    from search.index import PromptIndex

    settings = DedupSettings() if flag_threshold is None else DedupSettings(flag_threshold=flag_threshold)
    with PromptIndex.open(work / "idx", encoder) as index:
        start = time.perf_counter()
        clusters, stats = nightly(index, settings=settings)
        dedup_s = time.perf_counter() - start
        lines = cluster_lines(index, clusters)
        with open(work / "clusters.jsonl", "w", encoding="utf-8") as handle:  # for a look at what was found
            handle.writelines(json.dumps(c, ensure_ascii=False, default=str) + "\n" for c in lines)
        engine = SearchEngine(index)
        start = time.perf_counter()
        results = engine.similar_batch([q["text"] for q in corpus.queries], k=20)
        search_s = time.perf_counter() - start
    searched = [
        (q["campaign"], [{"id": h.id, "account_id": h.account_id} for h in r.hits])
        for q, r in zip(corpus.queries, results)
    ]
    return {"clusters": lines, "searched": searched, "seconds": {"dedup": dedup_s, "search": search_s}, "stats": stats}


def run_baseline(corpus, encoder) -> dict:  # type: ignore[no-untyped-def]
    from bench.baseline import Baseline

    base = Baseline(corpus.prompts, encoder._model)
    clusters = base.clusters()
    start = time.perf_counter()
    searched = [(q["campaign"], base.search(q["text"])) for q in corpus.queries]
    base.seconds["search"] = time.perf_counter() - start
    return {"clusters": clusters, "searched": searched, "seconds": base.seconds}


def calibrate(clusters: list[dict], truth: dict, target_fpr: float) -> dict:
    """Lowest threshold whose benign-account FPR (benign-majority clusters only) is within target."""
    benign_accounts = {a for a, info in truth["accounts"].items() if not info["campaign"]}
    benign_clusters = [
        c for c in clusters if sum(truth["prompts"].get(m) == "benign" for m in c["members"]) > len(c["members"]) / 2
    ]
    # flagging is score >= threshold, so the useful thresholds sit just above each benign score
    candidates = sorted({round(c["campaign_score"] + 1e-4, 4) for c in benign_clusters} | {0.0})
    for threshold in candidates:
        hit = {
            truth["prompt_accounts"][m]
            for c in benign_clusters
            if c["campaign_score"] >= threshold
            for m in c["members"]
        } & benign_accounts
        if len(hit) / len(benign_accounts) <= target_fpr:
            top = max((c["campaign_score"] for c in benign_clusters if c["campaign_score"] < threshold), default=0)
            return {
                "threshold": threshold,
                "benign_fpr_at_threshold": len(hit) / len(benign_accounts),
                "highest_benign_score_below": top,
                "benign_clusters": len(benign_clusters),
            }
    return {"threshold": 1.0}


def table(ours: dict, base: dict) -> str:
    lines = ["| metric | promptsim | baseline |", "|---|---|---|"]
    for k in HEADLINE_METRICS:
        o, b = ours[k], base.get(k, "-") if base else "-"
        if k == "campaigns_detected":
            o, b = f"{o}/{ours['campaigns']}", f"{b}/{base['campaigns']}" if base else "-"
        lines.append(f"| {k} | {o} | {b} |")
    lines.append(
        "\n| campaign type | detected | recall | pair F1 | p@20 | baseline detected | recall | pair F1 | p@20 |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for kind, v in ours["by_type"].items():
        bv = base["by_type"].get(kind, {}) if base else {}
        lines.append(
            f"| {kind} | {v['detected']} | {v['account_recall']} | {v['pairwise_f1']} "
            f"| {ours['sibling_precision_by_type'].get(kind)} | {bv.get('detected', '-')} "
            f"| {bv.get('account_recall', '-')} | {bv.get('pairwise_f1', '-')} "
            f"| {base['sibling_precision_by_type'].get(kind, '-') if base else '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="eval", help="demo, eval, or a prompt count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--suite",
        default="classic",
        choices=("classic", "families", "holdout"),
        help="classic: the first suite's campaign shapes; families: every evasion class and the hard negatives; "
        "holdout: one campaign per class in wordings the detector was never tuned on",
    )
    parser.add_argument("--work", type=Path, help="working directory [default: bench/out/eval-SCALE-SEED]")
    parser.add_argument("--calibrate", action="store_true", help="print the calibrated flag threshold instead")
    parser.add_argument("--target-fpr", type=float, default=0.001)
    parser.add_argument("--flag-threshold", type=float)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="promptsim's embedding model (static-minilm: bulk)")
    args = parser.parse_args()
    scale = int(args.scale) if args.scale.isdigit() else args.scale
    suffix = "" if args.model == "all-MiniLM-L6-v2" else f"-{Path(args.model).name}"
    suite = "" if args.suite == "classic" else f"-{args.suite}"
    work = args.work or REPO / "bench" / "out" / f"eval{suite}-{args.scale}-{args.seed}{suffix}"
    corpus = build_corpus(default_sources(), seed=args.seed, scale=scale, suite=args.suite)
    corpus.truth["prompt_accounts"] = {p["id"]: p["account_id"] for p in corpus.prompts}
    from search.embedding import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(args.model)
    if not (work / "idx" / "manifest.json").exists():
        write_corpus(corpus, work)
        print(f"ingesting {len(corpus.prompts)} prompts into {work / 'idx'} ...", file=sys.stderr)
        print(f"ingest: {ingest_corpus(work, corpus, encoder):.0f} s", file=sys.stderr)
    ours = run_promptsim(work, corpus, encoder, 0.0 if args.calibrate else args.flag_threshold)
    if args.calibrate:
        print(json.dumps(calibrate(ours["clusters"], corpus.truth, args.target_fpr), indent=2))
        return
    ours_metrics = {
        **cluster_metrics(ours["clusters"], corpus.truth),
        **sibling_metrics(ours["searched"], corpus.truth),
    }
    report = {
        "corpus": {
            "prompts": len(corpus.prompts),
            "campaigns": len(corpus.truth["campaigns"]),
            "accounts": len(corpus.truth["accounts"]),
        },
        "promptsim": ours_metrics,
        "promptsim_seconds": ours["seconds"],
        "promptsim_stats": ours["stats"],
    }
    if not args.no_baseline:  # the plain pipeline always embeds with MiniLM, as its docs show
        base = run_baseline(corpus, SentenceTransformerEncoder())
        base_metrics = {
            **cluster_metrics(base["clusters"], corpus.truth),
            **sibling_metrics(base["searched"], corpus.truth),
        }
        report.update(baseline=base_metrics, baseline_seconds=base["seconds"])
        print(table(ours_metrics, base_metrics))
    else:
        print(table(ours_metrics, {}))
    (work / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "promptsim_stats"}, indent=1, default=str)[:3000])


if __name__ == "__main__":
    main()

"""Side by side, one command: promptsim's bulk path against the plain pipeline on one labelled corpus.

The plain pipeline is the five libraries used as their docs show (bench/baseline.py):
per-shingle datasketch MinHash into MinHashLSH at 0.7, sentence-transformers `encode` (MiniLM)
into `IndexFlatIP`, union-find over both edge sets, flag clusters of >= 5 accounts.
promptsim runs its bulk path: ingest from the JSONL file (normalize, embed with the chosen
backend, bulk MinHash, SQLite store, FAISS, LSHs), the nightly dedup, then batch search.

Each side runs in its own process, so peak memory is its own. Printed: seconds per stage,
ingest throughput, peak RSS, the detection metrics of docs/evaluation.md, and the
ratios. JSON goes to bench/out/compare.json.

Example:
    python bench/compare.py                              # eval corpus (~21k prompts), static backend
    python bench/compare.py --model all-MiniLM-L6-v2     # promptsim on the quality path instead
    python bench/compare.py --scale 3000 --seed 2        # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.metrics import HEADLINE_METRICS as METRICS  # noqa: E402

HIGHER_IS_BETTER = {"campaigns_detected", "campaign_account_recall", "pairwise_precision", "pairwise_recall"}
HIGHER_IS_BETTER |= {"pairwise_f1", "sibling_precision_at_20", "sibling_accounts_at_20"}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_corpus(scale: str, seed: int):  # type: ignore[no-untyped-def]
    from bench.corpus import build_corpus, default_sources

    corpus = build_corpus(default_sources(), seed=seed, scale=int(scale) if scale.isdigit() else scale)
    corpus.truth["prompt_accounts"] = {p["id"]: p["account_id"] for p in corpus.prompts}
    return corpus


def metrics_of(clusters: list[dict], searched: list, truth: dict) -> dict:
    from bench.metrics import cluster_metrics, sibling_metrics

    found = {**cluster_metrics(clusters, truth), **sibling_metrics(searched, truth)}
    return {name: found[name] for name in METRICS}


def plain_side(scale: str, seed: int) -> dict:
    from bench.baseline import Baseline
    from search.embedding import SentenceTransformerEncoder

    corpus = load_corpus(scale, seed)
    model = SentenceTransformerEncoder()._model  # loaded outside the timed region, as for promptsim
    start = time.perf_counter()
    base = Baseline(corpus.prompts, model)
    ingest_s = time.perf_counter() - start
    clusters = base.clusters()
    start = time.perf_counter()
    searched = [(q["campaign"], base.search(q["text"])) for q in corpus.queries]
    stages = {**base.seconds, "search": time.perf_counter() - start}
    return {
        "prompts": len(corpus.prompts),
        "ingest_s": ingest_s,
        "stages_s": stages,
        "metrics": metrics_of(clusters, searched, corpus.truth),
        "peak_rss_mib": peak_rss_mib(),
    }


def promptsim_side(scale: str, seed: int, model: str, workers: int) -> dict:
    from bench.corpus import write_corpus
    from indexer.campaigns import cluster_lines, nightly
    from indexer.ingest import ingest_files
    from search.embedding import SentenceTransformerEncoder
    from search.engine import SearchEngine
    from search.index import PromptIndex

    corpus = load_corpus(scale, seed)
    encoder = SentenceTransformerEncoder(model)
    encoder.encode(["load the model outside the timed region"])
    with tempfile.TemporaryDirectory() as tmp:
        write_corpus(corpus, tmp)
        start = time.perf_counter()
        with PromptIndex.open(Path(tmp) / "idx", encoder, writable=True, create=True) as index:
            report = ingest_files(index, [Path(tmp) / "prompts.jsonl"], progress=False, workers=workers)
        ingest_s = time.perf_counter() - start
        with PromptIndex.open(Path(tmp) / "idx", encoder) as index:
            start = time.perf_counter()
            clusters, _ = nightly(index)
            dedup_s = time.perf_counter() - start
            lines = cluster_lines(index, clusters)
            start = time.perf_counter()
            results = SearchEngine(index).similar_batch([q["text"] for q in corpus.queries], k=20)
            search_s = time.perf_counter() - start
    searched = [
        (q["campaign"], [{"id": h.id, "account_id": h.account_id} for h in r.hits])
        for q, r in zip(corpus.queries, results)
    ]
    return {
        "prompts": len(corpus.prompts),
        "model": model,
        "workers": workers,
        "ingest_s": ingest_s,
        "stages_s": {**{f"ingest.{k}": v for k, v in report.seconds.items()}, "dedup": dedup_s, "search": search_s},
        "metrics": metrics_of(lines, searched, corpus.truth),
        "peak_rss_mib": peak_rss_mib(),
    }


def run_side(side: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--side", side, "--scale", args.scale, "--seed", str(args.seed)]
    command += ["--model", args.model, "--workers", str(args.workers)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def table(plain: dict, ours: dict) -> str:
    n = ours["prompts"]
    rows = [("prompts", n, plain["prompts"], "")]
    ingest_plain, ingest_ours = n / plain["ingest_s"], n / ours["ingest_s"]
    speedup = f"{ingest_ours / ingest_plain:.1f}x"
    rows.append(("ingest prompts/s", f"{ingest_ours:,.0f}", f"{ingest_plain:,.0f}", speedup))
    rows.append(("ingest s", f"{ours['ingest_s']:.1f}", f"{plain['ingest_s']:.1f}", ""))
    for stage, seconds in ours["stages_s"].items():
        rows.append((f"  promptsim {stage} s", f"{seconds:.1f}", "", ""))
    for stage, seconds in plain["stages_s"].items():
        rows.append((f"  plain {stage} s", "", f"{seconds:.1f}", ""))
    rows.append(("peak RSS MiB", f"{ours['peak_rss_mib']:,.0f}", f"{plain['peak_rss_mib']:,.0f}", ""))
    for name in METRICS:
        a, b = ours["metrics"][name], plain["metrics"][name]
        better = "" if a == b else ("better" if (a > b) == (name in HIGHER_IS_BETTER) else "worse")
        rows.append((name, a, b, better))
    width = max(len(str(r[0])) for r in rows) + 2
    lines = [f"{'':<{width}}{'promptsim':>14}{'plain':>14}  ratio/verdict"]
    lines += [f"{str(r[0]):<{width}}{str(r[1]):>14}{str(r[2]):>14}  {r[3]}" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="eval", help="demo, eval, or a prompt count [default: eval]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="static-minilm", help="promptsim's embedding model [default: static]")
    parser.add_argument("--workers", type=int, default=2, help="promptsim ingest worker processes [default: 2]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "compare.json")
    parser.add_argument("--side", choices=["plain", "promptsim"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "plain":
        print(json.dumps(plain_side(args.scale, args.seed)))
        return
    if args.side == "promptsim":
        print(json.dumps(promptsim_side(args.scale, args.seed, args.model, args.workers)))
        return
    ours = run_side("promptsim", args)
    print(f"promptsim: {ours['prompts']} prompts ingested in {ours['ingest_s']:.1f} s", file=sys.stderr)
    plain = run_side("plain", args)
    report = {"promptsim": ours, "plain": plain, "ingest_speedup": plain["ingest_s"] / ours["ingest_s"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(plain, ours))


if __name__ == "__main__":
    main()

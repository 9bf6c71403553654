"""Fit the static model's cosine scale against MiniLM, and measure how well the two agree.

A static (model2vec) model's cosines live on another scale than MiniLM's: random prompt
pairs average ~0.7 instead of ~0.2. promptsim's thresholds (0.9 for paraphrase edges, 0.8
for siblings, ...) are MiniLM cosines, so an index built with the static model maps its raw
cosines through a monotone, piecewise-linear quantile match fitted here: on the same prompt
pairs, the q-th quantile of static cosines maps to the q-th quantile of MiniLM cosines.
Pairs are random pairs plus each prompt's 10 nearest neighbours under either model, so the
high range, where decisions are made, is densely covered.

It also prints the agreement the performance issue asks for: Spearman rank correlation of
cosines on random and on near pairs, and the overlap of "near duplicate" decisions at the
matched threshold.

The fit uses the calibration corpus (seed 1, as the flag threshold); the knots it prints go
into search/embedding.py (STATIC_COSINE_KNOTS), for every static model built by the current recipe.

Example:
    python bench/calibrate_static.py                 # seed 1: fit and agreement
    python bench/calibrate_static.py --seed 0        # agreement on the held-out seed
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

KNOTS = 41


def corpus_vectors(seed: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM and static vectors of the same normalized corpus texts (MiniLM from bench/out if kept)."""
    from bench.corpus import build_corpus, default_sources
    from search.embedding import SentenceTransformerEncoder
    from search.models import STATIC_MODEL
    from search.normalize import normalize

    corpus = build_corpus(default_sources(), seed=seed, scale="eval")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(corpus.prompts), min(limit, len(corpus.prompts)), replace=False)
    texts = [normalize(corpus.prompts[i]["text"]) for i in picked]
    static = SentenceTransformerEncoder(STATIC_MODEL).encode(texts)
    kept = REPO / "bench" / "out" / f"eval-eval-{seed}" / "idx"  # bench/evaluate.py's MiniLM index, if kept
    if (kept / "manifest.json").exists():
        from search.index import PromptIndex

        with PromptIndex.open(kept, None) as index:
            rows = [index.store.row_of(corpus.prompts[i]["id"]) for i in picked]
            found, signals = index.store.signals(rows, index.manifest.dim, index.manifest.settings.num_perm)
            order = {int(r): k for k, r in enumerate(found.tolist())}
            return signals.vectors[[order[r] for r in rows]], static
    return SentenceTransformerEncoder().encode(texts), static


def pairs_of(minilm: np.ndarray, static: np.ndarray, seed: int, random_pairs: int = 200_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(minilm)
    a, b = rng.integers(0, n, random_pairs), rng.integers(0, n, random_pairs)
    keep = a != b
    near = []
    for vectors in (minilm, static):
        gram = vectors @ vectors.T
        np.fill_diagonal(gram, -np.inf)
        top = np.argpartition(-gram, 10, axis=1)[:, :10]
        near.append(np.column_stack([np.repeat(np.arange(n), 10), top.ravel()]))
    near_pairs = np.unique(np.sort(np.vstack(near), axis=1), axis=0)
    return {"random": np.column_stack([a[keep], b[keep]]), "near": near_pairs}


def cosines(vectors: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", vectors[pairs[:, 0]], vectors[pairs[:, 1]])


def fit_knots(raw: np.ndarray, common: np.ndarray) -> tuple[list[float], list[float]]:
    """Quantile match, denser at the top where thresholds sit; endpoints pinned to [-1, 1]."""
    q = 1 - np.geomspace(1, 1e-4, KNOTS)  # 0 ... 0.9999, most knots near 1
    x = np.quantile(raw, q)
    y = np.quantile(common, q)
    x = np.concatenate(([-1.0], x, [1.0]))
    y = np.concatenate(([-1.0], y, [1.0]))
    x, y = np.maximum.accumulate(x), np.maximum.accumulate(y)
    unique = np.concatenate(([True], np.diff(x) > 1e-6))
    return [round(float(v), 5) for v in x[unique]], [round(float(v), 5) for v in y[unique]]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1 = the calibration corpus)")
    parser.add_argument("--limit", type=int, default=6000, help="prompts sampled from the corpus")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "calibrate_static.json")
    args = parser.parse_args()
    from search.embedding import CosineScale, static_cosine_scale

    minilm, static = corpus_vectors(args.seed, args.limit)
    pairs = pairs_of(minilm, static, args.seed)
    both = np.vstack([pairs["random"], pairs["near"]])
    x, y = fit_knots(cosines(static, both), cosines(minilm, both))
    fitted = CosineScale(tuple(x), tuple(y))
    shipped = static_cosine_scale()  # what promptsim uses; before any is shipped, judge the new fit
    shipped = fitted if shipped.is_identity else shipped
    report: dict = {"seed": args.seed, "prompts": len(minilm), "pairs": {k: len(v) for k, v in pairs.items()}}
    for kind, p in pairs.items():
        m, s = cosines(minilm, p), cosines(static, p)
        report[kind] = {
            "spearman": round(spearman(m, s), 3),
            "mean_cosine_minilm": round(float(m.mean()), 3),
            "mean_cosine_static_raw": round(float(s.mean()), 3),
            "mean_cosine_static_scaled": round(float(shipped.to_common(s).mean()), 3),
        }
    m, s = cosines(minilm, both), cosines(static, both)
    for threshold in (0.8, 0.9):
        ours, theirs = shipped.to_common(s) >= threshold, m >= threshold
        union = np.sum(ours | theirs)
        report[f"decisions_at_{threshold}"] = {
            "minilm_says_near": int(theirs.sum()),
            "static_says_near": int(ours.sum()),
            "overlap": round(float(np.sum(ours & theirs) / union), 3) if union else 1.0,
            "agree_on_all_pairs": round(float(np.mean(ours == theirs)), 4),
        }
    report["knots"] = {"raw": x, "common": y}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "knots"}, indent=2))
    print(f"\nSTATIC_COSINE_KNOTS = (\n    {tuple(x)},\n    {tuple(y)},\n)")


if __name__ == "__main__":
    main()

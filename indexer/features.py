"""Cluster statistics and the campaign score built from them.

campaign_score = spread × (½·varied + ½·repeated), each factor in [0, 1]:
  spread   = 1 − exp(−(accounts − 1) / 8)        many distinct accounts (2 → 0.12, 10 → 0.68, 25 → 0.95)
  varied   = clip((semantic_diversity − 0.15) / 0.3)   members say different things around a shared frame
                                                  (1 − median cosine between members; copies ≈ 0, campaigns ≈ 0.5+)
  repeated = clip((prompts_per_account − 1) / 2)  each account sends it again and again
Benign look-alikes fail a factor: one app's template (1–2 accounts: spread), a popular prompt
or a jailbreak passed around (copies, once per account: varied and repeated), while
campaigns — including hydra accounts whose campaign share is 10–25% of their traffic, since
the share of own traffic is not part of the score — have all three.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from search.embedding import IDENTITY_SCALE, CosineScale

# Calibrated on benign data: `bench/evaluate.py --scale eval --seed 1 --calibrate` (a corpus the
# evaluation never sees) gave 0.5743 for a benign-account false-positive rate of at most 0.1%
# (its highest benign cluster, templated red-team questions from ~80 accounts, scored 0.5742).
# See docs/campaigns.md. Configurable with --flag-threshold.
DEFAULT_FLAG_THRESHOLD = 0.575
_SAMPLE = 64


def score_parts(features: dict[str, Any]) -> dict[str, float]:
    """The three factors of the campaign score, each in [0, 1] (see the module docstring)."""
    return {
        "spread": round(1.0 - math.exp(-(features["accounts"] - 1) / 8.0), 4),
        "varied": round(_clip((features["semantic_diversity"] - 0.15) / 0.3), 4),
        "repeated": round(_clip((features["prompts_per_account"] - 1.0) / 2.0), 4),
    }


def campaign_score(features: dict[str, Any]) -> float:
    """Score in [0, 1]: how much a cluster looks like a coordinated extraction campaign."""
    parts = score_parts(features)
    return round(parts["spread"] * (0.5 * parts["varied"] + 0.5 * parts["repeated"]), 4)


def explain(features: dict[str, Any], score: float, threshold: float) -> str:
    """One sentence saying why a cluster was (or was not) flagged."""
    parts = score_parts(features)
    verdict = "flagged" if score >= threshold else "not flagged"
    return (
        f"{verdict} (score {score:.2f}, threshold {threshold:.2f}): {features['accounts']} accounts "
        f"(spread {parts['spread']:.2f}); slots vary, diversity {features['semantic_diversity']:.2f} "
        f"(varied {parts['varied']:.2f}); {features['prompts_per_account']:.1f} prompts per account "
        f"(repeated {parts['repeated']:.2f}); median account puts {features['concentration_median']:.0%} "
        f"of its traffic here"
    )


def _clip(x: float) -> float:
    return float(min(max(x, 0.0), 1.0))


def cluster_features(
    members: np.ndarray,
    accounts: np.ndarray,
    account_names: list[str],
    account_totals: np.ndarray,
    timestamps: np.ndarray,
    vectors: np.ndarray,
    signatures: np.ndarray,
    template_share: float,
    rng: np.random.Generator,
    parts: np.ndarray | None = None,
    cosine_scale: CosineScale = IDENTITY_SCALE,
) -> dict[str, Any]:
    """Statistics of one cluster (indices into the window arrays); diversity is measured within parts."""
    acc = accounts[members]
    diversity_cosine = partial(_diversity_cosine, scale=cosine_scale)
    ids, counts = np.unique(acc, return_counts=True)
    share_of_own = counts / account_totals[ids]
    ts = np.sort(timestamps[members])
    order = np.argsort(-counts, kind="stable")[:5]
    return {
        "size": int(len(members)),
        "accounts": int(len(ids)),
        "prompts_per_account": round(float(len(members) / len(ids)), 3),
        "top_account_share": round(float(counts.max() / len(members)), 3),
        "concentration_median": round(float(np.median(share_of_own)), 3),
        "concentration_min": round(float(share_of_own.min()), 3),
        "span_hours": round(float((ts[-1] - ts[0]) / 3600), 2),
        "burstiness": round(_busiest_day_share(ts), 3),
        "semantic_diversity": round(_within_parts(diversity_cosine, vectors, members, parts, rng), 3),
        "slot_diversity": round(_within_parts(_diversity_jaccard, signatures, members, parts, rng), 3),
        "template_share": round(template_share, 3),
        "top_accounts": [
            {
                "account_id": account_names[ids[i]],
                "prompts": int(counts[i]),
                "share_of_own_traffic": round(float(share_of_own[i]), 3),
            }
            for i in order
        ],
    }


def _within_parts(
    measure,
    values: np.ndarray,
    members: np.ndarray,
    parts: np.ndarray | None,  # type: ignore[no-untyped-def]
    rng: np.random.Generator,
) -> float:
    """Size-weighted mean of measure over the parts of a cluster that have two or more members."""
    if parts is None:
        return float(measure(values[members], rng))
    ids, sizes = np.unique(parts, return_counts=True)
    groups = [(members[parts == p], n) for p, n in zip(ids, sizes) if n > 1]
    if not groups:
        return float(measure(values[members], rng))
    return float(sum(measure(values[g], rng) * n for g, n in groups) / sum(n for _, n in groups))


def _pairs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, n, _SAMPLE * 4)
    b = rng.integers(0, n, _SAMPLE * 4)
    keep = a != b
    return a[keep][:_SAMPLE], b[keep][:_SAMPLE]


def _diversity_cosine(vectors: np.ndarray, rng: np.random.Generator, scale: CosineScale = IDENTITY_SCALE) -> float:
    """1 − median cosine (on MiniLM's scale) between random member pairs."""
    a, b = _pairs(len(vectors), rng)
    if not len(a):
        return 0.0
    return 1.0 - float(scale.to_common(np.median(np.einsum("ij,ij->i", vectors[a], vectors[b]))))


def _diversity_jaccard(signatures: np.ndarray, rng: np.random.Generator) -> float:
    """1 − median whole-prompt Jaccard between random member pairs."""
    a, b = _pairs(len(signatures), rng)
    return 1.0 - float(np.median((signatures[a] == signatures[b]).mean(axis=1))) if len(a) else 0.0


def _busiest_day_share(ts: np.ndarray) -> float:
    """Share of the cluster's prompts inside its busiest 24-hour window."""
    ends = np.searchsorted(ts, ts + 86_400, side="left")
    return float((ends - np.arange(len(ts))).max() / len(ts))

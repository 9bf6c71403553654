"""Cluster statistics and the campaign score built from them.

campaign_score = spread × variety × evidence, each factor in [0, 1]:
  spread   = 1 − exp(−(accounts − 1) / 8)     many distinct accounts (2 → 0.12, 10 → 0.68, 25 → 0.95)
  variety  = clip((distinct_pairs − 0.2) / 0.5)    members carry different content around what they
             share (distinct_pairs: share of random member pairs in different near-copy groups;
             copies of one prompt ≈ 0, a campaign reusing each of 50 slots a few times ≈ 0.98)
  evidence = clip(0.45·coordination + 0.25·intent + 0.15·repetition + 0.15·dedication)
    coordination = max(burst, arrival)       the accounts act together in time (indexer/coordination.py)
    intent       = how strongly the instruction asks for what distillation harvests (search/intent.py)
    repetition   = clip((prompts_per_account − 1) / 2)   each account sends it again and again
    dedication   = median share of each account's own traffic the cluster takes
Benign look-alikes fail where campaigns do not: one app's template fails spread; a popular
prompt or a jailbreak passed around fails variety; ordinary users who append "think step by
step" have intent but neither coordination, repetition nor dedication; a team's template sent
all day by long-lived accounts has repetition and dedication but no coordination and little
intent. Campaigns have spread and variety and most of the evidence: a burst of one prompt per
fresh account has coordination and dedication with no repetition; hydra accounts (10-25% of
their traffic) have coordination and repetition; a slow drip has intent, repetition, dedication.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from search.embedding import IDENTITY_SCALE, CosineScale

from .coordination import Activity, coordination

# Calibrated on benign traffic only: `python bench/calibrate_families.py --seeds 1 2` (families
# suite, ~45k prompts each; never the evaluation seed) puts the lowest threshold within a 0.1%
# benign-account false-positive rate at 0.4059, just above its highest benign cluster (21 ordinary accounts
# sending MT-bench "try to explain your answer" questions, 0.4058). The default adds a 0.05
# margin for benign traffic no calibration corpus holds; see docs/campaigns.md.
# Configurable with --flag-threshold.
DEFAULT_FLAG_THRESHOLD = 0.45
WEIGHTS = {"coordination": 0.45, "intent": 0.25, "repetition": 0.15, "dedication": 0.15}
_SAMPLE = 64


def score_parts(features: dict[str, Any]) -> dict[str, float]:
    """Every factor of the campaign score, each in [0, 1] (see the module docstring)."""
    return {
        "spread": round(1.0 - math.exp(-(features["accounts"] - 1) / 8.0), 4),
        "variety": round(_clip((features["distinct_pairs"] - 0.2) / 0.5), 4),
        "coordination": round(max(features["burst"], features["arrival"]), 4),
        "intent": round(features["intent"], 4),
        "repetition": round(_clip((features["prompts_per_account"] - 1.0) / 2.0), 4),
        "dedication": round(features["dedication"], 4),
    }


def campaign_score(features: dict[str, Any]) -> float:
    """Score in [0, 1]: how much a cluster looks like a coordinated extraction campaign."""
    parts = score_parts(features)
    evidence = _clip(sum(weight * parts[name] for name, weight in WEIGHTS.items()))
    return round(parts["spread"] * parts["variety"] * evidence, 4)


def explain(features: dict[str, Any], score: float, threshold: float) -> str:
    """One sentence saying why a cluster was (or was not) flagged, factor by factor."""
    parts = score_parts(features)
    verdict = "flagged" if score >= threshold else "not flagged"
    intent = f"intent {parts['intent']:.2f}" + (f" ({features['intent_kind']})" if features.get("intent_kind") else "")
    return (
        f"{verdict} (score {score:.2f}, threshold {threshold:.2f}): {features['accounts']} accounts "
        f"(spread {parts['spread']:.2f}); {features['distinct_pairs']:.0%} of member pairs differ (variety "
        f"{parts['variety']:.2f}); coordination {parts['coordination']:.2f} (burst {features['burst']:.2f}, "
        f"arrival {features['arrival']:.2f}); {intent}; {features['prompts_per_account']:.1f} prompts per account "
        f"(repetition {parts['repetition']:.2f}); median account puts {features['dedication']:.0%} of its traffic here"
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
    *,
    activity: Activity,
    copies: np.ndarray,
    intent: tuple[float, str, float] = (0.0, "", 0.0),
) -> dict[str, Any]:
    """Statistics of one cluster (indices into the window arrays); diversity is measured within parts.

    copies: the near-copy group of every window position; intent: (calibrated, its kind, raw cosine)."""
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
        "distinct_pairs": round(_distinct_pairs(copies[members], rng), 3),
        **coordination(members, accounts, timestamps, account_totals, activity),
        "intent": round(float(intent[0]), 4),
        "intent_kind": intent[1],
        "intent_raw": round(float(intent[2]), 4),
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
    measure: Callable[[np.ndarray, np.random.Generator], float],
    values: np.ndarray,
    members: np.ndarray,
    parts: np.ndarray | None,
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


def _distinct_pairs(groups: np.ndarray, rng: np.random.Generator) -> float:
    """Share of random member pairs that sit in different near-copy groups."""
    if len(groups) < 2:
        return 0.0
    a, b = rng.integers(0, len(groups), 1024), rng.integers(0, len(groups), 1024)
    keep = a != b
    return float((groups[a[keep]] != groups[b[keep]]).mean())


def _busiest_day_share(ts: np.ndarray) -> float:
    """Share of the cluster's prompts inside its busiest 24-hour window."""
    ends = np.searchsorted(ts, ts + 86_400, side="left")
    return float((ends - np.arange(len(ts))).max() / len(ts))

"""indexer/features.py on its own: the campaign score's factors follow the formulas of its docstring."""

import math

import numpy as np
import pytest

from indexer.features import (
    WEIGHTS,
    _busiest_day_share,
    _distinct_pairs,
    _within_parts,
    campaign_score,
    explain,
    score_parts,
)


def features(**changes):
    base = {
        "accounts": 9,
        "distinct_pairs": 0.7,
        "burst": 0.2,
        "arrival": 0.6,
        "intent": 0.5,
        "prompts_per_account": 2.0,
        "dedication": 0.4,
        "intent_kind": "reasoning traces",
    }
    return {**base, **changes}


def test_each_factor_follows_its_formula():
    parts = score_parts(features())
    assert parts["spread"] == pytest.approx(1 - math.exp(-1), abs=1e-4)  # (9 - 1) / 8
    assert parts["variety"] == pytest.approx(1.0)  # (0.7 - 0.2) / 0.5
    assert parts["coordination"] == 0.6  # the larger of burst and arrival
    assert parts["repetition"] == 0.5  # (2 - 1) / 2
    evidence = 0.45 * 0.6 + 0.25 * 0.5 + 0.15 * 0.5 + 0.15 * 0.4
    assert campaign_score(features()) == pytest.approx(parts["spread"] * 1.0 * evidence, abs=1e-4)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "change",
    [
        {"accounts": 1},
        {"distinct_pairs": 0.2},
        {"burst": 0, "arrival": 0, "intent": 0, "prompts_per_account": 1, "dedication": 0},
    ],
)
def test_a_cluster_without_spread_variety_or_evidence_scores_zero(change):
    assert campaign_score(features(**change)) == 0.0


def test_factors_stay_within_zero_and_one():
    parts = score_parts(features(accounts=500, distinct_pairs=1.0, prompts_per_account=40.0))
    assert all(0.0 <= value <= 1.0 for value in parts.values())


def test_explain_names_the_verdict_the_threshold_and_the_intent_kind():
    score = campaign_score(features())
    assert explain(features(), score, score).startswith(f"flagged (score {score:.2f}")
    sentence = explain(features(), score, score + 0.01)
    assert sentence.startswith("not flagged") and "9 accounts" in sentence and "(reasoning traces)" in sentence


def test_within_parts_weights_each_part_of_two_or_more_by_its_size():
    values = np.arange(10, dtype=float)
    members = np.arange(10)

    def mean(v, rng):
        return float(v.mean())

    rng = np.random.default_rng(0)
    assert _within_parts(mean, values, members, None, rng) == 4.5
    parts = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])  # part 3 has one member: left out
    expected = (3 * 1.0 + 2 * 3.5 + 4 * 6.5) / 9
    assert _within_parts(mean, values, members, parts, rng) == pytest.approx(expected)
    assert _within_parts(mean, values, members, np.arange(10), rng) == 4.5  # only singletons: the whole cluster


def test_distinct_pairs_is_zero_for_copies_and_one_for_all_different():
    rng = np.random.default_rng(1)
    assert _distinct_pairs(np.zeros(50, np.int64), rng) == 0.0
    assert _distinct_pairs(np.arange(50), rng) == 1.0
    assert _distinct_pairs(np.array([3]), rng) == 0.0
    assert 0.4 < _distinct_pairs(np.array([0, 1] * 200), rng) < 0.6  # half the pairs differ


def test_busiest_day_share_counts_the_densest_24_hours():
    day = 86_400.0
    assert _busiest_day_share(np.array([0.0, 10.0, 20.0])) == 1.0
    assert _busiest_day_share(np.array([0.0, 100.0, 3 * day, 3 * day + 5, 9 * day])) == pytest.approx(2 / 5)

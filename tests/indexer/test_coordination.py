"""Coordination measures against the window's own traffic."""

from __future__ import annotations

import numpy as np

from indexer.coordination import Activity, coordination, densest_interval

DAY, HOUR = 86_400.0, 3_600.0


def _window(rng: np.random.Generator, extra_accounts: np.ndarray, extra_times: np.ndarray):
    """Two weeks of ordinary traffic (300 accounts, ~4 prompts each) plus the given prompts."""
    accounts = np.concatenate((rng.integers(0, 300, 1200), extra_accounts))
    times = np.concatenate((rng.uniform(0, 14 * DAY, 1200), extra_times))
    n_accounts = int(accounts.max()) + 1
    totals = np.bincount(accounts, minlength=n_accounts)
    return accounts, times, totals, Activity.of(accounts, times, n_accounts)


def test_fresh_accounts_in_a_burst_are_coordinated_without_any_repetition():
    rng = np.random.default_rng(0)
    burst_accounts = np.arange(300, 380)  # eighty fresh accounts, one prompt each, inside six hours
    accounts, times, totals, activity = _window(rng, burst_accounts, 5 * DAY + rng.uniform(0, 6 * HOUR, 80))
    found = coordination(np.arange(1200, 1280), accounts, times, totals, activity)
    assert found["burst"] > 0.9 and found["arrival"] > 0.9
    assert found["dedication"] == 0.0  # one prompt each: all of each account's traffic, which says nothing


def test_long_lived_accounts_paced_like_everyone_else_are_not():
    rng = np.random.default_rng(1)
    team = np.repeat(np.arange(300, 310), 40)  # ten accounts, forty prompts each, all fortnight
    accounts, times, totals, activity = _window(rng, team, rng.uniform(0, 14 * DAY, 400))
    found = coordination(np.arange(1200, 1600), accounts, times, totals, activity)
    assert found["burst"] < 0.1 and found["arrival"] < 0.1 and found["dedication"] == 1.0


def test_a_few_prompts_that_happen_to_fall_together_are_no_burst():
    rng = np.random.default_rng(2)
    accounts, times, totals, activity = _window(rng, np.array([1, 2, 3]), np.array([DAY, DAY + HOUR, DAY + 2 * HOUR]))
    found = coordination(np.arange(1200, 1203), accounts, times, totals, activity)
    assert found["burst"] < 0.5  # three of three in one interval: a Wilson lower bound of ~0.57, barely above chance
    assert found["dedication"] < 0.5  # ordinary accounts send much else


def test_densest_interval():
    start, end, count = densest_interval(np.array([0.0, 10, 11, 12, 50]), 5.0)
    assert (start, end, count) == (10.0, 15.0, 3)

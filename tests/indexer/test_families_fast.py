"""The fast paths of families.py against the plain loops they replaced (kept here as references).

adopt_by_containment and claim_by_senders used to ask one np.intersect1d per prompt per core and
scan every prompt once per family; they now ask a CoreTable and group prompts once. Leader
clustering compared one row at a time; it now decides blocks from one matrix product. _together
counted shared accounts before checking the period. On random inputs — prompts with no shingles,
families with many forms, families without a core, ties between cores, cosines an ulp from the
threshold — the results must come out identical.
"""

from __future__ import annotations

import numpy as np
import pytest

from indexer.containment import CoreTable, concat_ranges
from indexer.families import (
    FamilySettings,
    Form,
    Senders,
    _burst_span,
    _period_overlap,
    _same_burst,
    _together,
    adopt_by_containment,
    claim_by_senders,
    sharing_chance,
)
from indexer.graph import Edges


def reference_best(
    shingles: list[np.ndarray], asked: list[np.ndarray], cores: dict[int, list[np.ndarray]]
) -> tuple[list[int], list[float]]:
    families, shares = [], []
    for own, wanted in zip(shingles, asked):
        own = np.unique(own)
        best, share = -1, 0.0
        for family in sorted(wanted.tolist()):
            for core in cores.get(family, ()):
                held = len(np.intersect1d(own, core, assume_unique=True)) / len(core)
                if held > share:
                    best, share = family, held
        families.append(best)
        shares.append(share)
    return families, shares


def reference_adopt(labels, forms, edges, shingles_of, settings) -> int:  # type: ignore[no-untyped-def]
    cores: dict[int, list[np.ndarray]] = {}
    for form in forms:
        if len(form.core):
            cores.setdefault(form.family, []).append(form.core)
    pairs: dict[int, set[int]] = {}
    for left, right in ((edges.left, edges.right), (edges.right, edges.left)):
        outside = (labels[left] < 0) & (labels[right] >= 0)
        for pos, neighbour in zip(left[outside].tolist(), right[outside].tolist()):
            pairs.setdefault(pos, set()).add(int(labels[neighbour]))
    if not pairs:
        return 0
    positions = np.asarray(sorted(pairs), np.int64)
    best, share = reference_best(shingles_of(positions), [np.asarray(sorted(pairs[p])) for p in positions], cores)
    adopted = 0
    for pos, family, held in zip(positions.tolist(), best, share):
        if held >= settings.containment:
            labels[pos] = family
            adopted += 1
    return adopted


def reference_claim(labels, forms, accounts, timestamps, shingles_of, settings) -> int:  # type: ignore[no-untyped-def]
    window = max(float(timestamps.max() - timestamps.min()), 1.0) if len(timestamps) else 1.0
    claims: dict[int, int] = {}
    cores: dict[int, list[np.ndarray]] = {}
    for form in forms:
        if len(form.core) >= settings.min_core:
            cores.setdefault(form.family, []).append(form.core)
    bursts = {}
    for family in set(labels[labels >= 0].tolist()):
        start, end = _burst_span(timestamps[labels == family])
        if end - start <= settings.burst_share * window:
            bursts[family] = (start, end)
    claimable = ~np.isin(labels, np.asarray(sorted(bursts), np.int64))
    for family in cores:
        members = np.flatnonzero(labels == family)
        if len(members) < settings.min_accounts or family not in bursts:
            continue
        start, end = bursts[family]
        senders = np.unique(accounts[members])
        near = np.flatnonzero(
            claimable & np.isin(accounts, senders) & (timestamps >= start - 3600) & (timestamps <= end + 3600)
        )
        for pos in near.tolist():
            claims.setdefault(pos, family)
    if not claims:
        return 0
    positions = np.asarray(sorted(claims), np.int64)
    moved = 0
    for pos, own in zip(positions.tolist(), shingles_of(positions)):
        family = claims[pos]
        held = max(len(np.intersect1d(np.unique(own), core, assume_unique=True)) / len(core) for core in cores[family])
        if held >= settings.containment:
            labels[pos] = family
            moved += 1
    return moved


def _random_cores(rng: np.random.Generator, families: int, alphabet: int) -> dict[int, list[np.ndarray]]:
    cores = {}
    for family in rng.choice(1000, families, replace=False).tolist():
        forms = int(rng.choice((1, 2, 3, 40)))  # some families with many forms
        cores[family] = [
            np.unique(rng.integers(0, alphabet, int(rng.integers(1, 12))).astype(np.uint64)) for _ in range(forms)
        ]
    return cores


@pytest.mark.parametrize("seed", range(20))
def test_core_table_matches_one_intersect_per_core(seed):
    rng = np.random.default_rng(seed)
    alphabet = int(rng.choice((8, 30, 200)))  # small alphabets: many ties between cores
    cores = _random_cores(rng, int(rng.integers(1, 12)), alphabet)
    known = sorted(cores)
    prompts = int(rng.integers(0, 60))
    shingles = [rng.integers(0, alphabet, int(rng.choice((0, 1, 5, 20)))).astype(np.uint64) for _ in range(prompts)]
    asked = []
    for _ in range(prompts):  # families with cores, and some the table has never heard of
        wanted = set(rng.choice(known, int(rng.integers(0, len(known) + 1)), replace=False).tolist())
        if rng.random() < 0.3:
            wanted.add(5000 + int(rng.integers(0, 3)))
        asked.append(np.asarray(sorted(wanted), np.int64))
    family, share = CoreTable(cores).best(shingles, asked)
    want_family, want_share = reference_best(shingles, asked, cores)
    assert family.tolist() == want_family
    assert share.tolist() == want_share  # the same divisions: equal to the last bit


def test_core_table_edge_cases():
    table = CoreTable({})
    family, share = table.best([np.zeros(0, np.uint64)], [np.asarray([3])])
    assert family.tolist() == [-1] and share.tolist() == [0.0]
    assert [len(a) for a in table.best([], [])] == [0, 0]
    table = CoreTable({7: [np.asarray([1, 2], np.uint64), np.asarray([2, 1], np.uint64)], 9: []})
    family, share = table.best([np.asarray([2, 2, 1], np.uint64), np.asarray([5], np.uint64)], [np.asarray([7, 9])] * 2)
    assert family.tolist() == [7, -1] and share.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):
        CoreTable({1: [np.zeros(0, np.uint64)]})


def test_concat_ranges():
    assert concat_ranges(np.asarray([5, 0, 9]), np.asarray([2, 0, 3])).tolist() == [5, 6, 9, 10, 11]
    assert concat_ranges(np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []


def _random_window(seed: int):  # type: ignore[no-untyped-def]
    """Labels from a few random forms, accounts, times, edges and each prompt's shingles."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    alphabet = int(rng.choice((10, 40)))
    accounts = rng.integers(0, int(rng.integers(3, 60)), n)
    timestamps = np.sort(rng.uniform(0, 14 * 86_400, n)) if rng.random() < 0.5 else rng.uniform(0, 14 * 86_400, n)
    shingles = [rng.integers(0, alphabet, int(rng.choice((0, 2, 6, 15)))).astype(np.uint64) for _ in range(n)]
    labels = np.full(n, -1, np.int64)
    forms = []
    free = rng.permutation(n)
    at = 0
    for _ in range(int(rng.integers(0, 12))):
        size = int(rng.integers(1, 25))
        members = np.sort(free[at : at + size])
        at += size
        if not len(members):
            break
        family = int(members[0]) if rng.random() < 0.6 or not forms else forms[int(rng.integers(len(forms)))].family
        if rng.random() < 0.5:  # a burst: the family's members sent within a few hours
            start = rng.uniform(0, 13 * 86_400)
            timestamps[members] = start + rng.uniform(0, 4 * 3600, len(members))
        core = np.unique(rng.integers(0, alphabet, int(rng.choice((0, 1, 3, 8)))).astype(np.uint64))
        forms.append(Form(members, core, "", np.unique(accounts[members]), family))
        labels[members] = family
    m = int(rng.integers(0, 3 * n))
    edges = Edges(rng.integers(0, n, m), rng.integers(0, n, m), np.ones(m, np.float32))

    def shingles_of(positions: np.ndarray) -> list[np.ndarray]:
        return [shingles[p] for p in positions.tolist()]

    return labels, forms, accounts, timestamps, edges, shingles_of


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("containment", (0.6, 0.3))
def test_adopt_and_claim_match_the_plain_loops(seed, containment):
    labels, forms, accounts, timestamps, edges, shingles_of = _random_window(seed)
    settings = FamilySettings(containment=containment, min_accounts=2)
    want, got = labels.copy(), labels.copy()
    assert adopt_by_containment(got, forms, edges, shingles_of, settings) == reference_adopt(
        want, forms, edges, shingles_of, settings
    )
    assert got.tolist() == want.tolist()
    assert claim_by_senders(got, forms, accounts, timestamps, shingles_of, settings) == reference_claim(
        want, forms, accounts, timestamps, shingles_of, settings
    )
    assert got.tolist() == want.tolist()


def test_nothing_to_adopt_or_claim():
    labels = np.full(5, -1, np.int64)
    no_edges = Edges.empty()
    assert adopt_by_containment(labels, [], no_edges, lambda p: [], FamilySettings()) == 0
    accounts, timestamps = np.zeros(5, np.int64), np.arange(5, dtype=np.float64)
    assert claim_by_senders(labels, [], accounts, timestamps, lambda p: [], FamilySettings()) == 0
    assert labels.tolist() == [-1] * 5


def reference_leaders(unit: np.ndarray, threshold: float) -> np.ndarray:
    led_by = np.arange(len(unit))
    chosen: list[int] = []
    for i in range(len(unit)):
        if chosen:
            sims = unit[chosen] @ unit[i]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                led_by[i] = chosen[best]
                continue
        chosen.append(i)
    return led_by


def _near_calls(rng: np.random.Generator, n: int, dim: int, threshold: float) -> np.ndarray:
    """Unit rows with planted hard cases: cosines a rounding error from the threshold, exact and
    near ties between two leaders, duplicates, zero rows."""
    rows = [rng.standard_normal(dim)]
    while len(rows) < n:
        base = rows[int(rng.integers(len(rows)))]
        base = base / max(np.linalg.norm(base), 1e-9)
        other = rng.standard_normal(dim)
        other -= (other @ base) * base
        other /= np.linalg.norm(other)
        kind = int(rng.integers(6))
        if kind == 0:  # at the threshold, give or take an ulp
            c = threshold + float(rng.choice((-1, 0, 1))) * 1e-7
            rows.append(c * base + np.sqrt(1 - c * c) * other)
        elif kind == 1:  # halfway between two earlier rows: a tie
            rows.append(base + rows[int(rng.integers(len(rows)))] / max(np.linalg.norm(rows[-1]), 1e-9))
        elif kind == 2:
            rows.append(base.copy())
        elif kind == 3 and rng.random() < 0.2:
            rows.append(np.zeros(dim))
        else:
            rows.append(rng.standard_normal(dim))
    vectors = np.asarray(rows, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


@pytest.mark.parametrize("seed", range(12))
def test_leaders_match_one_row_at_a_time(seed):
    from indexer.families import leaders

    rng = np.random.default_rng(seed)
    dim = int(rng.choice((4, 16, 512)))
    unit = _near_calls(rng, int(rng.integers(1, 400)), dim, 0.75)
    want = reference_leaders(unit, 0.75)
    for block in (1, 7, 64, 1024):
        assert leaders(unit, 0.75, block).tolist() == want.tolist()


def test_leaders_of_nothing():
    from indexer.families import leaders

    assert leaders(np.zeros((0, 512), np.float32), 0.75).tolist() == []


def reference_together(cosine, leader_cosine, a, b, span_a, span_b, window, settings) -> bool:  # type: ignore[no-untyped-def]
    shared = len(np.intersect1d(a.accounts, b.accounts, assume_unique=True))
    chance = 1.0
    if shared and _period_overlap(span_a, span_b) >= settings.same_period:
        chance = sharing_chance(shared, a, b)
    if shared >= settings.min_shared_accounts and _period_overlap(span_a, span_b) >= settings.same_period:
        if chance <= settings.same_accounts_chance:
            strength = -np.log10(max(chance, 1e-300))
            if shared / min(len(a.accounts), len(b.accounts)) >= settings.same_accounts_overlap:
                strength += 4.0
            needed = np.interp(strength, (6.0, 10.0), (settings.shared_accounts_cosine, settings.same_accounts_cosine))
            if cosine >= needed:
                return True
    if leader_cosine < min(settings.burst_cosine, settings.burst_accounts_cosine) or not _same_burst(
        span_a, span_b, window, settings
    ):
        return False
    return leader_cosine >= settings.burst_cosine or (
        chance <= settings.burst_accounts_chance and leader_cosine >= settings.burst_accounts_cosine
    )


@pytest.mark.parametrize("min_shared", (0, 2))
def test_together_matches_counting_first(min_shared):
    rng = np.random.default_rng(min_shared)
    settings = FamilySettings(min_shared_accounts=min_shared)
    window, total = 14 * 86_400.0, 400
    traffic = rng.pareto(1.5, total) + 0.1  # a few heavy accounts, many light ones
    traffic /= traffic.sum()
    agree = 0
    for _ in range(3000):
        a_accounts = np.unique(rng.integers(0, total, int(rng.choice((0, 1, 3, 30, 300)))))
        b_accounts = np.unique(
            np.concatenate((a_accounts[: int(rng.integers(0, len(a_accounts) + 1))], rng.integers(0, total, 20)))
        )
        a, b = (
            Senders(x, len(x) * int(rng.choice((1, 2, 10))), float(traffic[x].sum())) for x in (a_accounts, b_accounts)
        )
        start = rng.uniform(0, window)
        span_a = (start, start + rng.choice((0.0, 3600.0, 86_400.0, window)))
        shift = rng.choice((0.0, 1800.0, 40_000.0, window / 2))
        span_b = (span_a[0] + shift, span_a[1] + shift * rng.random())
        cosine, leader = float(rng.uniform(0.1, 1.0)), float(rng.uniform(0.1, 1.0))
        want = reference_together(cosine, leader, a, b, span_a, span_b, window, settings)
        assert _together(cosine, leader, a, b, span_a, span_b, window, settings) == want
        agree += want
    assert 100 < agree < 2900  # both outcomes well exercised


def reference_form_groups(families):  # type: ignore[no-untyped-def]
    form_of = np.full(len(families.labels), -1, np.int64)
    for i, form in enumerate(families.forms):
        form_of[form.members] = i
    for family, indices in families.family_forms.items():
        largest = max(indices, key=lambda i: len(families.forms[i].members))
        form_of[(families.labels == family) & (form_of < 0)] = largest
    return [(int(g[0]), g) for g in families._by_label(form_of)]


@pytest.mark.parametrize("seed", range(20))
def test_form_groups_match_one_pass_per_family(seed):
    from indexer.families import Families

    labels, forms, accounts, timestamps, edges, shingles_of = _random_window(seed)
    settings = FamilySettings(min_accounts=2)
    adopt_by_containment(labels, forms, edges, shingles_of, settings)
    claim_by_senders(labels, forms, accounts, timestamps, shingles_of, settings)
    family_forms: dict[int, list[int]] = {}
    for i, form in enumerate(forms):
        family_forms.setdefault(form.family, []).append(i)
    families = Families(labels, forms, family_forms)
    got, want = families.form_groups(), reference_form_groups(families)
    assert [(label, g.tolist()) for label, g in got] == [(label, g.tolist()) for label, g in want]

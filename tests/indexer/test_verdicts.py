"""Verdicts follow families across dedup runs; the watchlist recognises a confirmed family's new prompts.

Three weekly windows of real background traffic hold campaigns written for this test. Each
window is deduplicated on its own (`since`/`until`), so every cluster id is new each week: a
verdict can only follow its family by wrapper meaning. The family encoder is the real
multilingual USE; the index's own embeddings use the fake encoder, which families do not read.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

import numpy as np
import pytest

from indexer.campaigns import nightly
from indexer.triage_store import TRIAGE_DB, TriageStore
from indexer.verdicts import TriageSettings, record_verdict
from indexer.watchlist import Watchlist
from search.family_encoder import load_family_encoder
from search.index import PromptIndex
from tests.conftest import FakeEncoder, background_texts
from tests.indexer.test_families import DAY, POOL, PREFIX, SHORT, T0, Window

WEEK = 7 * DAY
TEAM_EVAL = PREFIX  # the "partner's eval harness": flagged by dedup, dismissed by an analyst


def build() -> Window:
    w = Window()
    for week in range(3):
        for a in range(80):
            for _ in range(w.rng.choice((1, 2, 3))):
                w.add(next(w.slots), f"user-{week}-{a}", week * WEEK + 7 * DAY * w.rng.random(), "benign")
    for week, per_account in ((0, 3), (1, 3), (2, 10)):  # the harness, steady, then ten times a day
        for a in range(20):
            for _ in range(per_account):
                t = week * WEEK + DAY * (1 + 1.5 * w.rng.random())
                w.add(f"{TEAM_EVAL}\n\n{next(w.slots)}", f"harness-{a}", t, "harness")
    for week in (0, 1):  # a campaign an analyst confirms; in week two half its accounts are new
        for a in range(20):
            for _ in range(3):
                account = f"short-{a}" if week == 0 or a < 10 else f"short-new-{a}"
                w.add(f"{SHORT} {next(w.slots)}", account, week * WEEK + DAY * (3 + 1.5 * w.rng.random()), "short")
    for a in range(20):  # week two: another campaign asking for the same thing as the harness, other accounts
        for _ in range(3):
            w.add(f"{w.rng.choice(POOL)}\n\n{next(w.slots)}", f"pool-{a}", WEEK + DAY * (5 + w.rng.random()), "pool")
    return w


def run_week(index: PromptIndex, week: int, encoder) -> list[dict]:
    clusters, _ = nightly(index, since=T0 + week * WEEK, until=T0 + (week + 1) * WEEK, family_encoder=encoder)
    return clusters


def home(clusters: list[dict], index: PromptIndex, label: dict[str, str], name: str) -> dict:
    """The cluster holding most of a group's prompts."""
    ids = index.store.ids_of([int(r) for c in clusters for r in c["rows"]])
    return max(clusters, key=lambda c: sum(label.get(ids.get(int(r), ""), "") == name for r in c["rows"]))


@pytest.fixture(scope="module")
def weeks(tmp_path_factory):
    """Week 1: dismiss the harness, confirm the short campaign. Weeks 2 and 3 run with those verdicts."""
    w = build()
    path = tmp_path_factory.mktemp("verdicts") / "idx"
    encoder, families = FakeEncoder(), load_family_encoder()
    with PromptIndex.open(path, encoder, writable=True, create=True) as index:
        index.upsert(w.prompts, index.signals([p.text for p in w.prompts]))
        index.checkpoint()
    out = {}
    with PromptIndex.open(path, encoder) as index, TriageStore(path) as triage:
        first = run_week(index, 0, families)
        harness, short = home(first, index, w.label, "harness"), home(first, index, w.label, "short")
        assert harness["flagged"] and short["flagged"]
        out["dismissed"] = record_verdict(
            path,
            index.store,
            triage,
            harness["cluster_id"],
            "dismissed",
            "partner eval harness",
            by_key="k1",
            by_name="alice",
        )
        out["confirmed"] = record_verdict(
            path,
            index.store,
            triage,
            short["cluster_id"],
            "confirmed",
            "distillation",
            by_key="k2",
            by_name="bob",
            encoder=families,
        )
        for week in (1, 2):
            clusters = run_week(index, week, families)
            out[week] = {name: home(clusters, index, w.label, name) for name in ("harness", "short", "pool")}
        out["accounts"] = triage.watch_accounts(out["confirmed"].family_id, since=None)
    return w, path, out, (harness, short)


def test_a_dismissed_family_is_not_flagged_again_when_a_new_window_gives_it_a_new_id(weeks):
    _, _, out, (week_one, _) = weeks
    again = out[1]["harness"]
    assert again["cluster_id"] != week_one["cluster_id"]  # a new window: no member in common, a new id
    assert again["flagged"] is False and again["change"] == "new"
    verdict = again["features"]["verdict"]
    assert verdict["verdict"] == "dismissed" and verdict["by"] == "alice" and verdict["note"] == "partner eval harness"
    assert verdict["family_id"] == out["dismissed"].family_id and verdict["match"]["by"] == "wrapper"
    assert verdict["match"]["similarity"] >= 0.8
    assert "Not flagged: dismissed by alice" in again["features"]["why"]


def test_a_regrown_family_is_flagged_again_with_the_old_verdict_shown(weeks):
    _, _, out, _ = weeks
    regrown = out[2]["harness"]
    assert regrown["flagged"] is True and regrown["change"] == "regrown"
    previous = regrown["features"]["previous_verdict"]
    assert previous["verdict"] == "dismissed" and previous["note"] == "partner eval harness"
    assert regrown["features"]["regrown"]["rate"] > 2 * regrown["features"]["regrown"]["dismissed_rate"]
    assert "verdict" not in regrown["features"]


def test_another_campaign_asking_for_the_same_thing_is_not_silenced(weeks):
    w, _, out, _ = weeks
    pool = out[1]["pool"]
    assert pool["flagged"] is True and "verdict" not in pool["features"]


def test_a_confirmed_family_stays_flagged_and_its_new_accounts_are_listed(weeks):
    _, _, out, (_, week_one) = weeks
    again = out[1]["short"]
    assert again["cluster_id"] != week_one["cluster_id"] and again["flagged"] is True
    assert again["features"]["verdict"]["verdict"] == "confirmed"
    assert {a.account_id for a in out["accounts"]} == {f"short-new-{a}" for a in range(10, 20)}
    assert {a.source for a in out["accounts"]} == {"dedup"}


def test_the_watchlist_knows_a_confirmed_familys_new_prompt_and_not_step_by_step_users(weeks):
    _, path, out, _ = weeks
    slots = background_texts(3000)[-3:]
    watchlist = Watchlist(path)
    try:
        fresh, user, other = watchlist.match(
            [f"{SHORT} {slots[0]}", f"{slots[1]} Think step by step.", f"{TEAM_EVAL}\n\n{slots[2]}"]
        )
    finally:
        watchlist.close()
    assert fresh is not None and fresh.watch_id == out["confirmed"].family_id and fresh.similarity == 1.0
    assert fresh.confirmed_by == "bob" and fresh.note == "distillation"
    assert user is None and other is None  # a dismissed family is no watch entry


def test_verdicts_are_kept_with_who_when_why_in_a_private_file_without_pickle(weeks):
    _, path, out, _ = weeks
    assert (path / TRIAGE_DB).stat().st_mode & 0o777 == 0o600
    with TriageStore(path) as triage:
        listed = triage.verdicts()
        confirmed = triage.families(status="confirmed")
    assert [v.verdict for v in listed] == ["confirmed", "dismissed"] and listed[1].by == "alice"
    assert listed[0].at.endswith("Z") and listed[0].size == 60 and listed[0].accounts == 20
    assert len(confirmed) == 1 and 0.62 <= confirmed[0].baseline.threshold <= 0.95
    with sqlite3.connect(path / TRIAGE_DB) as db:
        blob = db.execute("SELECT forms FROM families LIMIT 1").fetchone()[0]
    assert not blob.startswith(b"\x80")  # raw float32, not a pickle
    assert np.frombuffer(blob, "<f4").size % 512 == 0


def test_bad_verdicts_are_refused_with_the_fix(weeks):
    _, path, _, (harness, _) = weeks
    with PromptIndex.open(path, FakeEncoder()) as index, TriageStore(path) as triage:
        with pytest.raises(ValueError, match="needs a note"):
            record_verdict(path, index.store, triage, harness["cluster_id"], "dismissed", "  ", by_key="k", by_name="a")
        with pytest.raises(ValueError, match="confirmed, dismissed"):
            record_verdict(path, index.store, triage, harness["cluster_id"], "benign", "x", by_key="k", by_name="a")
        assert record_verdict(path, index.store, triage, "c-none", "dismissed", "x", by_key="k", by_name="a") is None
    with pytest.raises(ValueError, match="regrowth"):
        TriageSettings(regrowth=1.0)


def test_campaign_labels_are_what_the_fixture_says(weeks):
    """Guards the fixture itself: each week's home cluster of a campaign is that campaign's, nearly pure."""
    w, path, out, _ = weeks
    with PromptIndex.open(path, FakeEncoder()) as index:
        for name in ("harness", "short", "pool"):
            c = out[1][name]
            ids = index.store.ids_of(c["rows"].tolist())
            top, n = Counter(w.label[i] for i in ids.values()).most_common(1)[0]
            assert top == name and n >= 0.9 * c["size"], (name, top, n, c["size"])

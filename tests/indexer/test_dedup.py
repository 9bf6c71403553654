"""Nightly dedup on small fixtures: chaining, wrappers, benign look-alikes, stable ids, banding."""

import random
from datetime import UTC, datetime

import numpy as np
import pytest
from datasketch import MinHashLSH

from indexer.campaigns import account_records, cluster_lines, nightly
from indexer.dedup import (
    Context,
    DedupSettings,
    Source,
    build_clusters,
    describe_clusters,
    find_edges,
    load_window,
    signals_of,
)
from indexer.distributed.dedup import _account_merges, _clustered
from indexer.graph import band_keys, band_pairs
from indexer.history import with_history as with_history_rows
from search.index import PromptIndex
from search.minhash import MinHasher
from search.normalize import normalize
from search.records import Prompt
from tests.conftest import background_texts

WRAPPER = "Before you answer, write out your complete internal reasoning step by step and then give the final answer:"
SUFFIX = "After answering, list each assumption you made and rate your confidence from zero to one hundred."
DAY = 86_400.0
T0 = 1_795_000_000.0


class Corpus:
    """Builds prompts with a shared clock and unique ids."""

    def __init__(self, seed: int = 0):
        self.prompts: list[Prompt] = []
        self.rng = random.Random(seed)
        self.slots = iter(background_texts(2000))

    def add(self, text: str, account: str, t: float | None = None) -> str:
        pid = f"p{len(self.prompts):05d}"
        self.prompts.append(Prompt(pid, text, account, T0 + (t if t is not None else self.rng.random() * 7 * DAY)))
        return pid

    def background(self, accounts: int, per_account: int, prefix: str = "user") -> None:
        for a in range(accounts):
            for _ in range(per_account):
                self.add(next(self.slots), f"{prefix}{a}")

    def campaign(self, accounts: int, per_account: int, render, prefix: str = "bot") -> list[str]:
        return [
            self.add(render(next(self.slots)), f"{prefix}{a}", DAY * (2 + self.rng.random()))
            for a in range(accounts)
            for _ in range(per_account)
        ]


class EmbeddingOnce:
    """The real model, each distinct text embedded once per module.

    Every test here builds its own corpus (and dedup writes to its index, so indexes are not
    shared), but the corpora draw on the same background texts, raw or wrapped: embedding is
    most of these tests' time, and the texts they share are embedded once. The model's
    identity (name, dimension, checksum, backend, scale) is the real encoder's.
    """

    def __init__(self, encoder):
        self._encoder = encoder
        self._vectors: dict[str, np.ndarray] = {}

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode(self, texts, *, batch_size: int = 64) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if new:
            self._vectors.update(zip(new, self._encoder.encode(new, batch_size=batch_size)))
        if not texts:
            return self._encoder.encode(texts)
        return np.stack([self._vectors[t] for t in texts])


@pytest.fixture(scope="module")
def encoder(real_encoder):
    return EmbeddingOnce(real_encoder)


def build(tmp_path, corpus: Corpus, encoder):
    """Campaign scores read embedding diversity, so these tests use the real model."""
    index = PromptIndex.open(tmp_path / "idx", encoder, writable=True, create=True)
    index.upsert(corpus.prompts, index.signals([p.text for p in corpus.prompts]))
    index.checkpoint()
    return index


def flagged_members(index, clusters) -> list[set[str]]:
    return [set(line["members"]) for line in cluster_lines(index, clusters) if line["flagged"]]


def test_wrapper_campaign_found_and_explained(tmp_path, encoder):
    corpus = Corpus()
    corpus.background(60, 2)
    members = corpus.campaign(12, 4, lambda slot: f"{WRAPPER}\n\n{slot}")
    with build(tmp_path, corpus, encoder) as index:
        clusters, _ = nightly(index)
        flagged = flagged_members(index, clusters)
        assert flagged == [set(members)]
        line = next(c for c in cluster_lines(index, clusters) if c["flagged"])
        assert line["template"].startswith(normalize(WRAPPER)) and "<*>" in line["template"]
        assert line["accounts"] == 12 and line["size"] == 48
        assert line["features"]["prompts_per_account"] == 4.0
        assert {"concentration_median", "burstiness", "span_hours", "slot_diversity", "top_accounts"} <= set(
            line["features"]
        )
        assert set(line) >= {
            "cluster_id",
            "members",
            "size",
            "accounts",
            "template",
            "first_seen",
            "last_seen",
            "campaign_score",
            "flagged",
            "features",
        }
        assert 0.0 <= line["campaign_score"] <= 1.0


def test_suffix_and_hydra_accounts_are_flagged(tmp_path, encoder):
    """Campaign share only ~15% of each account's traffic: still flagged."""
    corpus = Corpus(1)
    corpus.background(40, 2)
    members = corpus.campaign(10, 3, lambda slot: f"{slot}\n\n{SUFFIX}", prefix="hydra")
    for a in range(10):
        for _ in range(17):
            corpus.add(next(corpus.slots), f"hydra{a}")
    with build(tmp_path, corpus, encoder) as index:
        clusters, _ = nightly(index)
        assert flagged_members(index, clusters) == [set(members)]
        line = next(c for c in cluster_lines(index, clusters) if c["flagged"])
        assert line["features"]["concentration_median"] == pytest.approx(0.15, abs=0.01)


def test_benign_look_alikes_are_not_flagged(tmp_path, encoder):
    corpus = Corpus(2)
    corpus.background(50, 3)
    # one app's templated traffic from one account
    app = (
        "You are the assistant inside a note-taking app. Summarise the user's note below in three short bullet points:"
    )
    for slot in background_texts(2000)[-70:-10]:
        corpus.add(f"{app}\n\n{slot}", "app-1")
    # a popular prompt copied (with small edits) by many unrelated users, once each
    popular = "Write me a cover letter for a junior data analyst position at a mid-sized logistics company."
    for a in range(30):
        corpus.add(popular.upper() if a % 3 == 0 else popular + " Thanks!" * (a % 2), f"user{a}")
    # a long jailbreak-style prompt passed around a community, lightly edited each time
    passed = " ".join(background_texts(2000)[-3:])
    for a in range(20):
        words = passed.split()
        words.insert(corpus.rng.randrange(len(words)), "please")
        corpus.add(" ".join(words), f"user{a + 10}")
    campaign = corpus.campaign(15, 3, lambda slot: f"{WRAPPER}\n\n{slot}")
    with build(tmp_path, corpus, encoder) as index:
        clusters, _ = nightly(index)
        lines = cluster_lines(index, clusters)
        assert flagged_members(index, clusters) == [set(campaign)]
        by_first = {line["members"][0]: line for line in lines}
        assert any(line["size"] >= 55 and line["accounts"] == 1 for line in lines)  # the app clusters...
        assert any(line["size"] == 30 and line["accounts"] == 30 for line in lines)  # ...so do the copies
        assert not any(line["flagged"] for line in by_first.values() if line["size"] in (20, 30, 60))


def test_one_bridging_prompt_does_not_merge_two_families(tmp_path, encoder):
    corpus = Corpus(3)
    corpus.background(30, 2)
    a_text, b_text = [t for t in background_texts(2000) if 30 <= len(t.split()) <= 60][-2:]
    a_family = [corpus.add(f"{a_text} (copy {i})", f"a{i}") for i in range(8)]
    b_family = [corpus.add(f"{b_text} [version {i}]", f"b{i}") for i in range(8)]
    corpus.add(f"{a_text} {b_text}", "bridge")
    with build(tmp_path, corpus, encoder) as index:
        clusters, stats = nightly(index)
        groups = [set(line["members"]) for line in cluster_lines(index, clusters)]
        home_a = next(g for g in groups if a_family[0] in g)
        home_b = next(g for g in groups if b_family[0] in g)
        assert home_a is not home_b and set(a_family) <= home_a and set(b_family) <= home_b
        assert not home_a & home_b
        assert stats["edges"]["refused_merges"] >= 1


def test_cluster_ids_are_stable_across_incremental_runs(tmp_path, encoder):
    corpus = Corpus(4)
    corpus.background(40, 2)
    corpus.campaign(10, 3, lambda slot: f"{WRAPPER}\n\n{slot}")
    with build(tmp_path, corpus, encoder) as index:
        first, _ = nightly(index)
        old = {c["cluster_id"]: c["size"] for c in first if c["flagged"]}
    # the next hour: the campaign grows, a second one starts
    more = Corpus(5)
    more.prompts, more.slots = [], iter(background_texts(2000)[1000:1100])
    grown = [Prompt(f"n{i}", f"{WRAPPER}\n\n{next(more.slots)}", f"bot{i % 10}", T0 + 3 * DAY + i) for i in range(12)]
    fresh = [Prompt(f"m{i}", f"{next(more.slots)}\n\n{SUFFIX}", f"crew{i % 9}", T0 + 3 * DAY + i) for i in range(27)]
    with PromptIndex.open(tmp_path / "idx", encoder, writable=True) as index:
        index.upsert(grown + fresh, index.signals([p.text for p in grown + fresh]))
        index.checkpoint()
        second, stats = nightly(index, incremental=True)
    assert stats["incremental"]
    flagged = {c["cluster_id"]: c for c in second if c["flagged"]}
    (old_id,) = old
    assert old_id in flagged and flagged[old_id]["change"] == "grown" and flagged[old_id]["size"] == old[old_id] + 12
    assert [c["change"] for cid, c in flagged.items() if cid != old_id] == ["new"]
    assert stats["campaigns_new"] == 1 and stats["campaigns_grown"] == 1
    with PromptIndex.open(tmp_path / "idx", encoder) as index:
        third, _ = nightly(index)  # a full run agrees with the incremental one
    assert {c["cluster_id"]: c["size"] for c in third if c["flagged"]} == {k: v["size"] for k, v in flagged.items()}


def test_clusters_described_from_their_own_signals_equal_the_whole_windows(tmp_path, encoder):
    """The Ray driver keeps only clustered prompts' signals: describing from them changes nothing."""
    corpus = Corpus(7)
    corpus.background(30, 3)
    corpus.campaign(12, 3, lambda slot: f"{WRAPPER}\n\n{slot}")
    paraphrase = "Prior to replying, lay out all of your hidden thinking one step at a time, then state the answer:"
    corpus.campaign(12, 3, lambda slot: f"{paraphrase}\n\n{slot}")  # the same bots, the wrapper paraphrased
    popular = "Write me a cover letter for a junior data analyst position at a mid-sized logistics company."
    for a in range(20):
        corpus.add(popular + " Thanks!" * (a % 2), f"user{a}")
    with build(tmp_path, corpus, encoder) as index:
        source = Source.of(index)
        window = load_window(source, None, None)
        accounts = index.store.accounts_of(window.rows.tolist())
        assert [window.account_names[c] for c in window.accounts] == [accounts[int(r)] for r in window.rows]
        assert window.account_names == sorted(set(accounts.values()))
        settings = DedupSettings()
        labels, parts, counts = build_clusters(window, find_edges(window, settings, source.bands), settings)
        context = Context.minimal(window)  # the Ray driver's: no families, the whole window's activity
        whole = describe_clusters(source, window, labels, parts, settings, context)

        clustered, compact_parts = _clustered(parts)
        in_clusters = window.subset(clustered, signals_of(source, window.rows[clustered]))
        compact_labels, merged = _account_merges(in_clusters, compact_parts, settings)
        alone = describe_clusters(source, in_clusters, compact_labels, compact_parts, settings, context)
    assert 0 < len(clustered) < len(window) and merged == counts["account_merges"] >= 1
    assert len(whole) >= 2 and [c["rows"].tolist() for c in whole] == [c["rows"].tolist() for c in alone]
    assert [{k: v for k, v in c.items() if k != "rows"} for c in whole] == [
        {k: v for k, v in c.items() if k != "rows"} for c in alone
    ]


def test_accounts_report(tmp_path, encoder):
    corpus = Corpus(6)
    corpus.background(30, 2)
    corpus.campaign(10, 4, lambda slot: f"{WRAPPER}\n\n{slot}")
    corpus.add(next(corpus.slots), "bot0")  # bot0 also sends one ordinary prompt
    with build(tmp_path, corpus, encoder) as index:
        nightly(index)
        records = {r["account_id"]: r for r in account_records(index)}
    assert set(records) == {f"bot{i}" for i in range(10)}
    assert records["bot0"]["flagged_share"] == pytest.approx(0.8) and records["bot1"]["flagged_share"] == 1.0
    assert records["bot0"]["linked_accounts"] == 9 and len(records["bot0"]["clusters"]) == 1


def test_band_join_matches_datasketch_lsh():
    """The nightly bulk band join and the online MinHashLSH (same bands) see the same buckets."""
    texts = [normalize(t) for t in background_texts(400)]
    texts += [t + " extra words at the end" for t in texts[:100]]
    hasher = MinHasher()
    sigs = hasher.signatures(texts)
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    for i, s in enumerate(sigs):
        lsh.insert(i, hasher.lean(s))
    bands, rows = lsh.b, lsh.r
    keys = band_keys(sigs, bands, rows)
    for i in range(len(texts)):
        mates = set(np.flatnonzero((keys == keys[i]).any(axis=1)).tolist())
        assert mates == set(lsh.query(hasher.lean(sigs[i]))), i
    # the star join keeps exactly the connectivity of all bucket pairs
    pairs = band_pairs(sigs, bands, rows)
    assert components(len(texts), pairs) == components(len(texts), all_bucket_pairs(keys))


def all_bucket_pairs(keys: np.ndarray) -> np.ndarray:
    out = set()
    for band in range(keys.shape[1]):
        buckets: dict[int, list[int]] = {}
        for i, k in enumerate(keys[:, band].tolist()):
            buckets.setdefault(k, []).append(i)
        out |= {(a, b) for m in buckets.values() for x, a in enumerate(m) for b in m[x + 1 :]}
    return np.asarray(sorted(out)).reshape(-1, 2)


def components(n: int, pairs: np.ndarray) -> set[frozenset[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs.tolist():
        parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), set()).add(i)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def test_report_renders_campaigns_and_keeps_prompt_text_inert(tmp_path, encoder):
    from indexer.report import build_report

    corpus = Corpus(7)
    corpus.background(30, 2)
    corpus.campaign(10, 3, lambda slot: f"{WRAPPER}\n\n<script>alert(1)</script> <img src=x onerror=alert(2)> {slot}")
    with build(tmp_path, corpus, encoder) as index:
        with pytest.raises(ValueError, match="promptsim dedup"):
            build_report(index, tmp_path / "early")
        clusters, _ = nightly(index)
        page = build_report(index, tmp_path / "report").read_text()
    (flagged,) = [c for c in clusters if c["flagged"]]
    assert flagged["cluster_id"] in page and "<svg" in page and "Why: flagged" in page
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_signals_wait_on_disk_while_families_are_mined_and_come_back_the_same(tmp_path, encoder, monkeypatch):
    import indexer.dedup as dedup
    from search.family_encoder import load_family_encoder

    corpus = Corpus(3)
    corpus.background(30, 2)
    corpus.campaign(10, 3, lambda slot: f"{WRAPPER}\n\n{slot}")
    with build(tmp_path, corpus, encoder) as index:
        source = Source.of(index)
        stale = index.path / f"{dedup.SPILL_PREFIX}killed"  # what a run killed mid-way leaves
        stale.mkdir()
        window = load_window(source, None, None)
        before = window.loaded_signals
        with dedup._signals_on_disk(window, index.path, enabled=True):
            assert window.signals is None and not stale.exists()
            (spill,) = index.path.glob(f"{dedup.SPILL_PREFIX}*")
            assert spill.stat().st_mode & 0o777 == 0o700
            assert sorted(f.name for f in spill.iterdir()) == ["signatures.npy", "vectors.npy", "windows.npy"]
            assert all(f.stat().st_mode & 0o777 == 0o600 for f in spill.iterdir())
        after = window.loaded_signals
        for name in ("vectors", "signatures", "windows"):
            assert np.array_equal(getattr(before, name), getattr(after, name))
        assert not list(index.path.glob(f"{dedup.SPILL_PREFIX}*"))

        family_encoder = load_family_encoder()
        kept = dedup.run_dedup(source, encoder=family_encoder).clusters
        monkeypatch.setattr(dedup, "SPILL_MIN_PROMPTS", 0)
        spilled = dedup.run_dedup(source, encoder=family_encoder).clusters
    assert kept and [c["rows"].tolist() for c in kept] == [c["rows"].tolist() for c in spilled]
    assert [c["campaign_score"] for c in kept] == [c["campaign_score"] for c in spilled]


def test_a_day_against_its_history_holds_the_campaigns_earlier_members_and_nothing_unconnected(tmp_path, encoder):
    """`dedup --history`: the day's prompts with their siblings from the whole index (indexer/history.py)."""
    corpus = Corpus(11)
    corpus.background(40, 2)  # days 0-7
    earlier = corpus.campaign(10, 3, lambda slot: f"{WRAPPER}\n\n{slot}")  # days 2-3
    day = T0 + 9 * DAY
    today = [corpus.add(f"{WRAPPER}\n\n{next(corpus.slots)}", f"late{a}", 9 * DAY + 60 * a) for a in range(6)]
    today += [corpus.add(next(corpus.slots), f"user{a}", 9 * DAY + 3_600 + a) for a in range(5)]
    with build(tmp_path, corpus, encoder) as index:
        alone, _ = nightly(index, since=day, until=day + DAY)
        with_history, stats = nightly(index, since=day, until=day + DAY, history=True)
        alone_lines, history_lines = cluster_lines(index, alone), cluster_lines(index, with_history)
        cosine = DedupSettings().in_raw_cosines(index.cosine_scale).cosine
        drawn, own = with_history_rows(index, day, day + DAY, cosine=cosine)
        own_ids = {index.store.fetch(own.tolist())[r].id for r in own.tolist()}
        anchored, _ = with_history_rows(index, day, day + DAY, cosine=cosine, budget=0.0)
        nothing, none = with_history_rows(index, day + 30 * DAY, day + 31 * DAY, cosine=cosine)  # an empty window
        assert len(nothing) == len(none) == 0
        oldest_row = min(index.store.row_of(pid) for pid in earlier)
    assert own_ids == set(today) and set(anchored) < set(drawn) and oldest_row in anchored  # budget 0: anchors only
    (campaign_alone,) = [set(c["members"]) for c in alone_lines if set(c["members"]) & set(today)]
    assert campaign_alone == set(today[:6])  # the day alone: six prompts, six accounts
    (campaign,) = [c for c in history_lines if set(c["members"]) & set(today)]
    members = set(campaign["members"])
    # 36 candidates each, 20 drawn per prompt: the oldest, the newest, and each its own sample
    assert members <= set(today[:6]) | set(earlier) and members >= set(today[:6])
    assert len(members & set(earlier)) >= 24 and campaign["flagged"]
    oldest = min(p.timestamp for p in corpus.prompts if p.id in earlier)
    assert campaign["first_seen"] == datetime.fromtimestamp(int(oldest), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    clustered = set().union(*(set(c["members"]) for c in history_lines))
    background = {p.id for p in corpus.prompts} - set(earlier) - set(today)
    assert not clustered & background  # history that is no sibling of the day stays out
    assert all(set(c["members"]) & set(today) for c in history_lines)  # every cluster is the day's
    assert stats["prompts"] < len(corpus.prompts)

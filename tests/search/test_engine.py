"""Search with the real bundled model: obfuscation, fusion, templates, filters, summary."""

import numpy as np
import pytest

from search.engine import SearchEngine, SearchFilters
from search.errors import PromptNotFound
from search.index import PromptIndex
from search.records import Prompt, to_iso
from tests.conftest import background_texts
from tests.search.test_normalize import OBFUSCATIONS

WRAPPER = (
    "Before answering, write out your complete internal reasoning step by step, then give the final answer after FINAL:"
)
ORIGINAL = "Explain how a bloom filter trades memory for false positives, with a worked example in Python."


@pytest.fixture(scope="module")
def engine(real_encoder, tmp_path_factory):
    """A real-model index: background prompts, an original prompt, and a wrapper campaign."""
    path = tmp_path_factory.mktemp("engine") / "idx"
    texts = background_texts(300)
    prompts = [Prompt(f"bg{i}", t, f"user{i % 97}", 1_763_000_000.0 + 3600 * i) for i, t in enumerate(texts)]
    prompts.append(Prompt("orig", ORIGINAL, "alice", 1_763_500_000.0))
    slots = background_texts(360)[300:]
    prompts += [
        Prompt(f"camp{i}", f"{WRAPPER}\n\n{s}", f"bot{i % 12}", 1_763_600_000.0 + 60 * i) for i, s in enumerate(slots)
    ]
    with PromptIndex.open(path, real_encoder, writable=True, create=True) as index:
        index.upsert(prompts, index.signals([p.text for p in prompts]))
        index.checkpoint()
    index = PromptIndex.open(path, real_encoder)
    yield SearchEngine(index, sibling_threshold=0.8)
    index.close()


@pytest.mark.parametrize("kind", sorted(OBFUSCATIONS))
def test_obfuscated_variants_reach_jaccard_1_and_cosine_099(engine, kind):
    hit = engine.similar(OBFUSCATIONS[kind](ORIGINAL), k=1).hits[0]
    assert hit.id == "orig"
    assert hit.jaccard == 1.0
    assert hit.cosine >= 0.99
    assert hit.score == 1.0


def test_scores_are_in_unit_range_and_sorted(engine):
    for text in background_texts(320)[300:310]:
        hits = engine.similar(text, k=30).hits
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        for h in hits:
            assert 0.0 <= h.cosine <= 1.0 and 0.0 <= h.score <= 1.0
            assert h.jaccard is None or 0.0 <= h.jaccard <= 1.0
            assert h.score == max(h.cosine, h.jaccard or 0.0, h.template or 0.0)


def test_a_fresh_wrapper_prompt_finds_its_campaign_across_accounts(engine):
    fresh = f"{WRAPPER}\n\nWrite a haiku about the first snow falling on a quiet mountain village at dawn."
    result = engine.similar(fresh, k=20)
    assert all(h.id.startswith("camp") for h in result.hits)
    assert result.summary.siblings == 60 and result.summary.accounts == 12
    assert result.summary.first_seen == to_iso(1_763_600_000.0)
    assert result.summary.last_seen == to_iso(1_763_600_000.0 + 60 * 59)


def test_search_by_id_excludes_itself(engine):
    result = engine.similar_to_id("camp0", k=5)
    assert "camp0" not in [h.id for h in result.hits]
    assert result.summary.siblings == 59
    with pytest.raises(PromptNotFound):
        engine.similar_to_id("nope")


def test_filters_restrict_accounts_and_time(engine):
    fresh = f"{WRAPPER}\n\nList three uses of a Raspberry Pi in a greenhouse."
    only = engine.similar(fresh, k=50, filters=SearchFilters(account_ids=("bot3",)))
    assert {h.account_id for h in only.hits} == {"bot3"} and len(only.hits) == 5
    assert only.summary.accounts == 1
    excluded = engine.similar(fresh, k=50, filters=SearchFilters(exclude_account_ids=("bot3",)))
    assert "bot3" not in {h.account_id for h in excluded.hits}
    late = engine.similar(fresh, k=50, filters=SearchFilters(since=1_763_600_000.0 + 60 * 50))
    assert {h.id for h in late.hits if h.id.startswith("camp")} == {f"camp{i}" for i in range(50, 60)}
    high = engine.similar(fresh, k=50, min_score=0.99)
    assert high.hits and all(h.score >= 0.99 for h in high.hits)


def test_batch_equals_single_queries(engine):
    texts = background_texts(305)[300:] + [ORIGINAL.upper()]
    batch = engine.similar_batch(texts, k=7)
    for text, result in zip(texts, batch):
        single = engine.similar(text, k=7)
        assert [h.id for h in result.hits] == [h.id for h in single.hits]
        assert [h.score for h in result.hits] == pytest.approx([h.score for h in single.hits], abs=1e-3)


def test_unrelated_prompt_has_no_siblings(engine):
    result = engine.similar("Quantos graus faz hoje em Lisboa? Responde em português, por favor.", k=5)
    assert result.summary.siblings == 0
    assert all(h.score < 0.8 for h in result.hits)


def test_cosine_siblings_come_from_the_neighbours_or_a_range_search_alike(engine):
    """Siblings beyond the fetched neighbours need a range search; those within them do not."""
    index = engine.index
    fresh = f"{WRAPPER}\n\nSummarise the causes of the 1929 stock market crash in two paragraphs."
    query = index.signals([fresh])
    rows = index.vectors.ids()
    cosines = index.vectors.vectors_of(rows) @ query.vectors[0]
    ranked = np.sort(cosines)[::-1]
    threshold = float(ranked[19] + ranked[20]) / 2  # 20 siblings, the boundary far from any cosine
    assert ranked[19] - ranked[20] > 1e-4
    brute = set(rows[cosines >= threshold].tolist())
    few = SearchEngine(index, sibling_threshold=threshold, fetch=4)  # its last neighbour is a sibling: range search
    many = SearchEngine(index, sibling_threshold=threshold, fetch=400)  # every sibling is among its neighbours
    for searcher in (few, many):
        nearest = index.vectors.search(query.vectors, searcher.fetch + 1)
        assert set(searcher._cosine_siblings(query.vectors, None, nearest)[0].tolist()) == brute
    assert len(brute) == 20 and few.similar(fresh).summary == many.similar(fresh).summary


def test_membership_by_binary_search_is_isin():
    from search.arrays import among

    rng = np.random.default_rng(7)
    for size in (0, 1, 5, 400):
        members = np.unique(rng.integers(0, 500, size)).astype(np.int64)
        values = rng.integers(-5, 510, 300).astype(np.int64)
        assert among(values, members).tolist() == np.isin(values, members).tolist()

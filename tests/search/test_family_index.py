"""Matching a query to the saved families: which family a pasted prompt belongs to."""

from __future__ import annotations

import numpy as np

from search.family_encoder import UniversalSentenceEncoder
from search.family_index import FamilyIndex
from tests.search.test_wrappers import FORMAT, SYSTEM, short_slot_window


def test_a_short_slot_query_finds_its_flagged_campaign_not_the_common_phrase_of_its_slot():
    # The campaign's wording fills most of the query, so the chosen wrapper is the slot's opening
    # ("what is the best way to"), an ordinary family's form; each sentence of the query alone is
    # too little of the campaign's form. The query's recurring parts carry the campaign.
    vocabulary = short_slot_window().vocabulary
    encoder = UniversalSentenceEncoder()
    forms = encoder.encode(
        [
            "what is the best way to",
            "system respond as a meticulous senior specialist task what is the best way to … "
            "format reasoning first as a numbered list final answer last after the word answer",
        ]
    )
    families = FamilyIndex(
        vocabulary,
        np.asarray(forms, np.float32),
        form_family=np.asarray([0, 1]),
        cluster_ids=np.asarray(["ordinary", "campaign"]),
        member_rows=np.asarray([1, 2, 3, 4]),
        member_offsets=np.asarray([0, 2, 4]),
        model="use-multilingual",
        flagged=np.asarray([False, True]),
    )
    query = f"{SYSTEM} What is the best way to keep basil alive indoors? {FORMAT}"
    match = families.match([query, "What is the best way to keep basil alive indoors?"], encoder)
    assert match[0] is not None and match[0].cluster_id == "campaign" and match[0].similarity > 0.9
    assert list(match[0].rows) == [3, 4]
    assert match[1] is not None and match[1].cluster_id == "ordinary"  # the ordinary question stays ordinary


def test_a_long_lived_engine_picks_up_the_families_a_later_dedup_run_writes(tmp_path):
    from search.engine import SearchEngine
    from search.index import PromptIndex
    from tests.conftest import FakeEncoder
    from tests.search.test_index import add, prompts

    vocabulary = short_slot_window().vocabulary
    encoder = UniversalSentenceEncoder()
    query = f"{SYSTEM} What is the best way to keep basil alive indoors? {FORMAT}"

    def families(form: str, cluster_id: str) -> FamilyIndex:
        return FamilyIndex(
            vocabulary,
            np.asarray(encoder.encode([form]), np.float32),
            form_family=np.asarray([0]),
            cluster_ids=np.asarray([cluster_id]),
            member_rows=np.asarray([1, 2]),
            member_offsets=np.asarray([0, 2]),
            model="use-multilingual-v3",
            flagged=np.asarray([True]),
        )

    path = tmp_path / "idx"
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        add(index, prompts(["a first prompt", "a second prompt", "a third one"]))
        index.checkpoint()
    with PromptIndex.open(path, FakeEncoder()) as index:
        engine = SearchEngine(index)
        assert engine.family_matches([query]) == [None]  # no dedup run yet
        families("format reasoning first as a numbered list final answer last after the word answer", "c1").save(path)
        assert engine.family_matches([query])[0].cluster_id == "c1"
        families("system respond as a meticulous senior specialist task", "c2").save(path)  # the next night's run
        assert engine.family_matches([query])[0].cluster_id == "c2"
        (path / "families.npz").unlink()  # a run without families removes the file
        assert engine.family_matches([query]) == [None]

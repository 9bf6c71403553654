"""Wrapper extraction against a mined vocabulary, and the vocabulary file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.wrappers import mine_wrappers
from search.errors import IndexCorrupt
from search.segments import Tokenizer
from search.wrappers import Vocabulary, WrapperSettings, extract, recurring_parts
from tests.conftest import background_texts

PREFIX = "Walk through the problem in numbered steps and justify each one before the final answer."
SUFFIX = "Afterwards rate your confidence from one to ten and name the step most likely to be wrong."


def _window(texts: list[str], accounts: list[int]):
    """Mine wrappers over texts (each its own near-copy group)."""
    return mine_wrappers(
        lambda pos: [texts[i] for i in pos.tolist()], len(texts), np.asarray(accounts), np.arange(len(texts))
    )


def test_a_prefix_and_a_suffix_template_are_found_and_the_slot_left_out():
    slots = background_texts(160)
    texts = [f"{PREFIX}\n\n{s}" for s in slots[:60]] + [f"{s}\n\n{SUFFIX}" for s in slots[60:120]] + slots[120:]
    found = _window(texts, [i % 30 for i in range(len(texts))])
    assert all(found.text[i].startswith("walk through the problem") for i in range(60))
    assert all(found.text[i].endswith("most likely to be wrong") for i in range(60, 120))
    # the slot stays out: the wrapper covers only part of each prompt
    assert max(found.coverage[:120]) < 0.8
    assert sum(bool(t) for t in found.text[120:]) <= 4  # ordinary prompts mostly have no wrapper


def test_a_fixed_part_in_the_middle_is_found():
    middle = "Using only the passage above, answer the question below and cite the sentences you rely on."
    slots = background_texts(200)
    texts = [f"{a}\n\n{middle}\n\n{b}" for a, b in zip(slots[:80], slots[80:160])]
    found = _window(texts, [i % 25 for i in range(len(texts))])
    assert sum("answer the question below and cite" in t for t in found.text) >= 76


def test_text_repeated_by_few_accounts_is_not_a_wrapper():
    slots = background_texts(60)
    texts = [f"{PREFIX}\n\n{s}" for s in slots]
    found = _window(texts, [i % 3 for i in range(len(texts))])  # three accounts only
    assert not any(found.text)


def test_the_same_extraction_runs_on_a_query_with_the_saved_vocabulary(tmp_path):
    slots = background_texts(100)
    texts = [f"{PREFIX}\n\n{s}" for s in slots[:80]]
    found = _window(texts, [i % 20 for i in range(len(texts))])
    found.vocabulary.save(tmp_path / "vocab.npz")
    loaded = Vocabulary.load(tmp_path / "vocab.npz")
    assert np.array_equal(loaded.hashes, found.vocabulary.hashes) and loaded.groups == found.vocabulary.groups
    query = extract(Tokenizer()(f"{PREFIX}\n\n{slots[95]}"), loaded, WrapperSettings())
    assert query is not None and query[0].startswith("walk through the problem")


def test_a_damaged_vocabulary_is_refused(tmp_path):
    path = tmp_path / "vocab.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(IndexCorrupt, match="dedup"):
        Vocabulary.load(path)


def test_a_long_prompt_is_mined_in_its_head_and_tail_and_both_wrapper_parts_are_kept():
    slots = background_texts(400)
    long_slots = [" ".join(slots[i : i + 12]) for i in range(0, 360, 12)]  # 30 slots of several hundred words
    texts = [f"{PREFIX}\n\n{s}\n\n{SUFFIX}" for s in long_slots] + slots[360:]
    found = _window(texts, [i % 10 for i in range(len(texts))])
    for i in range(30):
        assert "walk through the problem" in found.text[i] and "most likely to be wrong" in found.text[i], i
        assert found.anchored[i]


FRENCH = "Résous le problème ci-dessous. Avant la réponse finale, écris tout ton raisonnement étape par étape."
SPANISH = "Resuelve el siguiente problema. Antes de la respuesta final, escribe todo tu razonamiento paso a paso."


def test_an_instruction_around_reused_popular_slots_is_the_wrapper_not_the_slots_common_phrase():
    # A translated campaign draws its slots from popular prompts ("I want you to act as a ..."),
    # each slot under several of its languages, so the slot's own support is several prompts and
    # one language's instruction only a few times that; the slot's opening phrase is sent by many
    # ordinary users. The instruction must still be the wrapper (it was the opening phrase, and
    # the prompt joined the ordinary users' "act as" family).
    rest = background_texts(140)
    roles = ("historian", "poet", "chef", "coach", "critic", "tutor")
    popular = [f"I want you to act as a {role}. {rest[i]}" for i, role in enumerate(roles)]
    ordinary = [f"I want you to act as a guide. {t}" for t in rest[10:80]]
    campaign = [f"{wrapper}\n\n{slot}" for slot in popular for wrapper in (FRENCH, SPANISH) for _ in range(4)]
    texts = campaign + popular + ordinary
    accounts = [100 + i % 24 for i in range(len(campaign))] + list(range(len(popular) + len(ordinary)))
    found = _window(texts, accounts)
    instructions = ("résous le problème ci dessous", "resuelve el siguiente problema")
    assert all(found.text[i].startswith(instructions) for i in range(len(campaign))), found.text[: len(campaign)]
    assert sum(found.text[i].startswith("i want you to act as") for i in range(len(campaign), len(texts))) >= 60


SYSTEM = "[SYSTEM] Respond as a meticulous senior specialist. [TASK]"
FORMAT = "[FORMAT] Reasoning first, as a numbered list; final answer last, after the word ANSWER."


def short_slot_window():
    """A multipart campaign around questions of a few words that open with a phrase many ordinary users send."""
    rest = background_texts(400)
    campaign = [f"{SYSTEM} What is the best way to {' '.join(t.split()[:7])}? {FORMAT}" for t in rest[:60]]
    ordinary = [f"What is the best way to {' '.join(t.split()[:9])}?" for t in rest[100:300]]
    texts = campaign + ordinary + rest[300:400]
    accounts = [1000 + i % 30 for i in range(len(campaign))] + list(range(len(texts) - len(campaign)))
    return _window(texts, accounts)


def test_a_short_slot_query_has_the_campaigns_fixed_parts_among_its_recurring_parts():
    # The slot is a few words, so the campaign's parts are most of the prompt and set its own
    # support level; only the slot's common opening clears the contrast, and `extract` picks it.
    # Matching against family forms needs every recurring part, the campaign's among them.
    vocabulary = short_slot_window().vocabulary
    query = Tokenizer()(f"{SYSTEM} What is the best way to keep basil alive indoors? {FORMAT}")
    parts = recurring_parts(query, vocabulary, WrapperSettings(), limit=8)
    assert any(p.startswith("system respond as a meticulous senior specialist") for p in parts), parts
    assert any(p.startswith("format reasoning first as a numbered list") for p in parts), parts
    assert len(recurring_parts(query, vocabulary, WrapperSettings(), limit=1)) == 1
    assert recurring_parts(Tokenizer()("zxq wvut plmk"), vocabulary, WrapperSettings(), limit=8) == []


def test_mining_on_two_worker_processes_finds_the_same_wrappers_as_one():
    slots = background_texts(300)
    texts = [f"{PREFIX}\n\n{s}" for s in slots[:100]] + [f"{s}\n\n{SUFFIX}" for s in slots[100:200]] + slots[200:]
    texts += [json.dumps({"task": "grade the answer", "rubric": "1-10", "answer": s[:40]}) for s in slots[:30]]
    accounts = np.asarray([i % 40 for i in range(len(texts))])

    def mine(workers: int):
        return mine_wrappers(
            lambda pos: [texts[i] for i in pos.tolist()],
            len(texts),
            accounts,
            np.arange(len(texts)),
            WrapperSettings(chunk=97),  # several chunks, each split among the workers
            workers=workers,
            parallel_min=0,
        )

    one, two = mine(1), mine(2)
    assert one.text == two.text and sum(bool(t) for t in one.text) >= 200
    assert all(np.array_equal(a, b) for a, b in zip(one.shingles, two.shingles))
    for field in ("coverage", "support", "anchored"):
        assert np.array_equal(getattr(one, field), getattr(two, field))
    assert np.array_equal(one.vocabulary.hashes, two.vocabulary.hashes)


def test_each_wrapper_wording_is_tokenized_again_once_and_every_prompt_gets_its_own_spans_words(monkeypatch):
    import itertools

    import indexer.wrappers as mining

    slots = background_texts(240)
    texts = (
        [f"{PREFIX}\n\n{s}\n\n{SUFFIX}" for s in slots[:60]]  # two spans: the same first span as the next
        + [f"{PREFIX.upper()}\n\n{s}" for s in slots[60:120]]  # case folds: the same tokens, the same text
        + [f"{s}\n\n{SUFFIX}" for s in slots[120:180]]
        + slots[180:]
    )
    accounts = [i % 30 for i in range(len(texts))]
    reads = []
    wording_of = mining._wording_of
    monkeypatch.setattr(mining, "_wording_of", lambda work: reads.append(work[0]) or wording_of(work))
    shared = _window(texts, accounts)

    unique = itertools.count()  # every prompt its own wording: each tokenized, as before wording_key
    monkeypatch.setattr(mining, "wording_key", lambda spans: next(unique).to_bytes(8, "little"))
    reads_before = len(reads)
    each = _window(texts, accounts)

    assert shared.text == each.text
    wrapped = sum(bool(t) for t in shared.text)
    assert wrapped >= 170 and len(reads) - reads_before == wrapped
    assert reads_before == len(set(t for t in shared.text if t)) >= 3  # one read per wording
    assert sum(" … " in t for t in shared.text) >= 55  # the two-span prompts kept both parts


def test_the_shingle_reader_on_worker_processes_gives_each_prompts_mined_shingles():
    from indexer.wrappers import mined_shingles, shingle_reader

    texts = background_texts(120) + ["", "短い中国語の文", json.dumps({"a": 1, "b": [2, 3]}), "word " * 600]
    settings = WrapperSettings()
    expected = [mined_shingles(Tokenizer()(t), settings) for t in texts]
    asked = np.asarray([3, 0, 121, 122, 123, 120, *range(4, 120)], np.int64)
    with shingle_reader(lambda pos: [texts[i] for i in pos.tolist()], settings, workers=2, parallel_min=50) as read:
        small, large = read(asked[:6]), read(asked)  # one process, then the forked workers
        again = read(asked[::-1])  # the same workers
    for got, positions in ((small, asked[:6]), (large, asked), (again, asked[::-1])):
        assert len(got) == len(positions)
        assert all(np.array_equal(g, expected[p]) for g, p in zip(got, positions.tolist()))
    assert sum(len(g) > 0 for g in large) >= 115

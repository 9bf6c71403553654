"""Tokens, shingles and canonical structured payloads for wrapper mining."""

from __future__ import annotations

import json

import numpy as np

from search.segments import Tokenizer, canonical, shingles, shingles_of_many


def test_scripts_without_spaces_give_one_token_per_character():
    tokens = Tokenizer()("请一步一步地写出推理 then answer in English")
    assert tokens.words[:3] == ["请", "一", "步"]
    assert tokens.words[-3:] == ["answer", "in", "english"]  # normalized: casefolded
    assert tokens.substring(0, 3) == "请一步一" and tokens.substring(9, 11) == "理 then answer"


def test_token_ids_are_stable_across_processes_and_instances():
    a, b = Tokenizer()("Explain every step"), Tokenizer()("explain EVERY step")
    assert np.array_equal(a.ids, b.ids)
    # a fixed value: blake2b, not Python's salted hash (which changes per process)
    assert int(a.ids[0]) == int.from_bytes(__import__("hashlib").blake2b(b"explain", digest_size=8).digest(), "little")


def test_shingles_depend_on_order_and_cover_every_window():
    ids = np.arange(1, 7, dtype=np.uint64)
    found = shingles(ids, 4)
    assert len(found) == 3 and len(set(found.tolist())) == 3
    assert not np.array_equal(shingles(ids[::-1], 4), found[::-1])
    assert len(shingles(ids[:3], 4)) == 0
    hashes, owner = shingles_of_many([ids, ids[:2], ids[:5]], 4)
    assert owner.tolist() == [0, 0, 0, 2, 2]
    assert np.array_equal(hashes[:3], found)


def test_reordered_json_fields_give_the_same_canonical_text():
    fields = {"task": "Answer with every step.", "input": "What is 2+2?", "format": {"steps": "numbered", "a": 1}}
    one = json.dumps(fields)
    other = json.dumps(dict(reversed(list(fields.items()))), indent=2)
    assert canonical(one) == canonical(other)
    assert "format.steps: numbered" in canonical(one).splitlines()


def test_reordered_yaml_fields_give_the_same_canonical_text_and_plain_text_is_untouched():
    one = "task: Answer with every step.\ninput: |\n  What is 2+2?\n  Show it.\nrequest_id: abc\n"
    other = "request_id: abc\ninput: |\n  What is 2+2?\n  Show it.\ntask: Answer with every step.\n"
    assert canonical(one) == canonical(other) != one
    prose = "Summarize this.\nThen: list the key points.\nFinally, be brief."
    assert canonical(prose) == prose
    assert canonical("{not json at all") == "{not json at all"


def test_a_yaml_payload_cannot_build_objects():
    hostile = "a: 1\nb: 2\nc: !!python/object/apply:os.system ['echo owned']\n"
    assert canonical(hostile) == hostile  # safe_load refuses the tag: the text stays as it is


def test_homoglyphs_fold_inside_mixed_words_only():
    from search.normalize import normalize_words

    # a Latin word salted with Cyrillic look-alikes folds; a Russian sentence stays Russian
    assert normalize_words("Wrіte а detailed explanatiоn") == "write a detailed explanation"
    assert normalize_words("Реши задачу ниже") == "реши задачу ниже"
    assert Tokenizer()("Реши задачу ниже").words == ["реши", "задачу", "ниже"]

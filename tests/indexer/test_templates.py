"""indexer/templates.py on its own: fixed words stay, each run of varying words becomes one slot."""

from indexer.templates import MAX_TEMPLATE_CHARS, SLOT, extract_template


def test_words_shared_by_most_members_stay_and_each_varying_run_is_one_slot():
    representative = "Translate into French: the cat sleeps on the warm mat. Reply with JSON only."
    others = [
        "Translate into French: my brother plays chess. Reply with JSON only.",
        "Translate into French: rain is expected tomorrow afternoon. Reply with JSON only.",
        "Translate into French: open the window please. Reply with JSON only.",
    ]
    template, share = extract_template(representative, others)
    assert template == f"Translate into French: {SLOT} Reply with JSON only."
    assert share == 7 / 14  # 7 of the representative's 14 words are fixed


def test_a_lone_common_word_between_slots_is_not_template():
    representative = "alpha beta the gamma delta"
    others = ["one two the three four", "five six the seven eight"]
    template, share = extract_template(representative, others)
    assert template == SLOT and share == 0.0


def test_keep_share_decides_how_many_members_must_agree():
    representative = "Summarise: apples are very red. Be brief."
    others = ["Summarise: pears are very green. Be brief.", "Summarise: plums are very sweet. Be brief.", "unrelated"]
    strict, _ = extract_template(representative, others, keep_share=1.0)
    lenient, _ = extract_template(representative, others, keep_share=0.6)
    assert strict == SLOT
    assert lenient == f"Summarise: {SLOT} are very {SLOT} Be brief."  # two of three members agree


def test_no_others_or_no_words():
    assert extract_template("just  one   prompt", []) == ("just one prompt", 1.0)
    assert extract_template("   ", ["anything"]) == ("", 0.0)


def test_a_long_template_keeps_both_ends():
    words = [f"w{i}" for i in range(400)]
    template, share = extract_template(" ".join(words), [" ".join(words)])
    assert share == 1.0 and len(template) <= MAX_TEMPLATE_CHARS + 3
    assert template.startswith("w0 w1 ") and template.endswith(" w398 w399") and " … " in template

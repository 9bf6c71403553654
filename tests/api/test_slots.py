"""The part of a hit that differs from the query: marked for the UI, excerpted for the CLI table."""

from api.slots import ELLIPSIS, diff_parts, excerpt, runs

WRAPPER = "Before answering, write out your complete internal reasoning step by step, then give the final answer:"


def test_the_slot_is_marked_and_the_template_is_not():
    parts = diff_parts(f"{WRAPPER} which planets have rings?", f"{WRAPPER} Name three prime numbers.")
    assert "".join(p for p, _ in parts) == f"{WRAPPER} Name three prime numbers."
    assert [p for p, differs in runs(parts) if differs] == ["Name three prime numbers."]


def test_the_excerpt_starts_near_the_slot_and_marks_every_cut():
    """A 90-character preview of a long wrapper shows only the wrapper; the excerpt shows the slot."""
    hit = f"{WRAPPER}\n\n  Name three prime numbers and say why each of them is prime, in detail, please."
    shown = excerpt(diff_parts(f"{WRAPPER} which planets have rings?", hit), 40)
    text = "".join(p for p, _ in shown)
    assert text.startswith(ELLIPSIS) and text.endswith(ELLIPSIS) and "Name three prime" in text
    assert "\n" not in text and len(text) <= 40 + 2  # whitespace runs are one space; two ellipses


def test_a_slot_longer_than_the_width_is_cut_not_hidden():
    hit = f"{WRAPPER} {'x' * 300}"
    text = "".join(p for p, _ in excerpt(diff_parts(f"{WRAPPER} y", hit), 60))
    assert "xxxx" in text and text.endswith(ELLIPSIS)


def test_a_short_hit_is_shown_whole_without_marks():
    shown = excerpt(diff_parts("hello there", "hello there"), 90)
    assert "".join(p for p, _ in shown) == "hello there" and not any(d for _, d in shown)

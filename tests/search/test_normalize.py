import sys
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from search.normalize import (
    _ASCII_INVISIBLE,
    _confusables_table,
    _drop_table,
    _normalize_unicode,
    is_blank,
    normalize,
)

ORIGINAL = "Before you answer, write out your complete internal reasoning step by step, then give FINAL: the answer."


def zero_width(text: str) -> str:
    return "\u200b".join(text[i : i + 3] for i in range(0, len(text), 3)) + "\ufeff"


def homoglyphs(text: str) -> str:
    swap = {"a": "\u0430", "e": "\u0435", "o": "\u03bf", "p": "\u0440", "c": "\u0441", "i": "\u0456", "y": "\u0443"}
    return "".join(swap.get(ch, ch) for ch in text)


def odd_case(text: str) -> str:
    return "".join(ch.upper() if i % 2 else ch.lower() for i, ch in enumerate(text))


def odd_whitespace(text: str) -> str:
    return "  " + text.replace(" ", " \t\u00a0\n ") + "\r\n"


OBFUSCATIONS = {
    "zero_width": zero_width,
    "homoglyph": homoglyphs,
    "case": odd_case,
    "whitespace": odd_whitespace,
    "all": lambda t: zero_width(odd_whitespace(homoglyphs(odd_case(t)))),
}


def test_every_obfuscation_normalizes_to_the_original():
    for name, obfuscate in OBFUSCATIONS.items():
        variant = obfuscate(ORIGINAL)
        assert variant != ORIGINAL, name
        assert normalize(variant) == normalize(ORIGINAL), name


def test_normalize_steps():
    assert normalize("ＦＵＬＬ\u00a0width") == "full width"  # NFKC + whitespace
    assert normalize("Stra\u00dfe") == "strasse"  # casefold, not lower
    assert normalize("a\u200d\u2060b\u202ec") == "abc"  # format characters dropped
    assert normalize("\u0397ELLO") == "hello"  # Greek capital eta folds before casefold
    assert normalize("  ") == ""


def test_non_confusable_text_is_kept():
    assert normalize("naïve café 東京 2+2=4") == "naïve café 東京 2+2=4"


BLANKS = ["", " \t\n", "\u200b\u200d\ufeff", "\u00a0\u2060 \u3000", "\x00\x1f\u202e"]
NOT_BLANK = ["a", "  7 ", "\u200bok\u200b", "\uff41", "\u0430", "\u4e2d", "!", "\u0301"]


def test_is_blank_says_exactly_whether_normalization_leaves_nothing():
    for text in BLANKS:
        assert is_blank(text) and normalize(text) == "", repr(text)
    for text in NOT_BLANK:  # fullwidth, Cyrillic, CJK, punctuation, a lone combining mark
        assert not is_blank(text) and normalize(text) != "", repr(text)


@given(st.text(alphabet=st.sampled_from(" a\t\u200b\u00a0\uff41\u2060\x00\u0301\u3000\u202e\u0430"), max_size=12))
def test_is_blank_agrees_with_normalize_on_mixed_invisible_text(text):
    assert is_blank(text) == (normalize(text) == "")


@given(st.text(max_size=30))
def test_is_blank_agrees_with_normalize_on_any_text(text):
    assert is_blank(text) == (normalize(text) == "")


def test_the_drop_table_scans_every_plane_that_holds_format_or_control_characters():
    every_code_point = _drop_table((range(sys.maxunicode + 1),))
    assert _drop_table() == every_code_point
    assert 0x200B in every_code_point and 0xE0041 in every_code_point  # zero-width space, tag 'A'


def test_the_ascii_fast_path_drops_exactly_the_ascii_characters_the_full_path_drops():
    dropped = {chr(c) for c in range(128) if c in _drop_table()}
    assert {chr(c) for c in range(128) if _ASCII_INVISIBLE.fullmatch(chr(c))} == dropped


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_the_ascii_fast_path_gives_what_the_full_path_gives(text):
    assert normalize(text) == _normalize_unicode(text)


def every_translate(text: str) -> str:
    """_normalize_unicode without its shortcuts: both tables applied to every text."""
    text = unicodedata.normalize("NFKC", text).translate(_drop_table()).translate(_confusables_table())
    return " ".join(text.casefold().translate(_confusables_table()).split())


def test_skipping_a_translate_never_changes_the_result_for_any_mapped_character():
    mapped = sorted(set(_drop_table()) | set(_confusables_table()))
    for code in mapped:
        for text in (chr(code), f"caf\u00e9 {chr(code)}x", f"\u6771\u4eac{chr(code).upper()} \u0397"):
            assert _normalize_unicode(text) == every_translate(text), hex(code)


@given(st.text(max_size=40))
def test_skipping_a_translate_never_changes_the_result_on_any_text(text):
    assert _normalize_unicode(text) == every_translate(text)

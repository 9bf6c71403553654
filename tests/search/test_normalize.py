from search.normalize import normalize

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

"""Text normalization shared by indexing and querying, so obfuscated variants meet.

Steps, in order: NFKC; drop format characters (zero-width spaces and joiners, BOM,
bidi controls: Unicode category Cf) and other invisible controls; casefold; fold
confusables (homoglyphs such as Cyrillic 'а' or Greek 'ο') to their Latin look-alike
using Unicode's confusables data (UTS #39, shipped by `confusable_homoglyphs`);
collapse every run of whitespace to one space. Raw text is stored unchanged; only
signals (embeddings, MinHash) are computed from the normalized form.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from importlib import resources
from itertools import chain

NORMALIZATION_VERSION = 1


# The ASCII part of _drop_table (pinned by a test): controls that are not whitespace.
_ASCII_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1b\x7f]")


def normalize(text: str) -> str:
    """Return the canonical form of text used for every similarity signal."""
    if text.isascii():
        # Same result, a third of the time (most prompts): NFKC and the homoglyph table
        # leave ASCII alone, and casefold is lower().
        return " ".join(_ASCII_INVISIBLE.sub("", text).lower().split())
    return _normalize_unicode(text)


def _normalize_unicode(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    # Fold homoglyphs both before casefold (Greek 'Η' looks like 'H', its lowercase 'η'
    # does not look like 'h') and after it (casefold can create new look-alikes). Each
    # translate is skipped when no character of the text is in its tables: str.translate
    # looks up every character of a non-ASCII text in a dict (~100 ns each), a set test is
    # a few times cheaper, and most non-ASCII prompts hold nothing to drop or fold.
    confusables = _confusables_table()
    dropped_or_folded, folded = _mapped_characters()
    if not dropped_or_folded.isdisjoint(text):
        text = text.translate(_drop_table()).translate(confusables)
    text = text.casefold()
    if not folded.isdisjoint(text):
        text = text.translate(confusables)
    return " ".join(text.split())


_WORD = re.compile(r"\w+")


def normalize_words(text: str) -> str:
    """normalize(), except that homoglyphs are folded only inside words that mix in ASCII letters.

    A Latin word salted with Cyrillic look-alikes ('аnswеr') folds as in normalize(); a genuinely
    Cyrillic or Greek word ('задачу') keeps its letters, so a multilingual model can still read
    it. Wrapper mining and the family encoder see text this way; the stored signals do not.
    """
    if text.isascii():
        return normalize(text)
    text = unicodedata.normalize("NFKC", text)
    dropped_or_folded, folded = _mapped_characters()
    if not dropped_or_folded.isdisjoint(text):
        text = text.translate(_drop_table())
    confusables = _confusables_table()
    for step in ("fold", "casefold", "fold"):  # as normalize(): fold before and after casefold
        if step == "casefold":
            text = text.casefold()
        elif not folded.isdisjoint(text):
            text = _WORD.sub(lambda m: _fold_mixed(m.group(), folded, confusables), text)
    return " ".join(text.split())


def _fold_mixed(word: str, folded: frozenset[str], confusables: dict[int, str]) -> str:
    """Fold a word that mixes ASCII letters with look-alikes, or a one- or two-letter look-alike ('а')."""
    if word.isascii() or folded.isdisjoint(word):
        return word
    if _ASCII_ALNUM.search(word) is None and not (len(word) <= 2 and all(c in folded for c in word)):
        return word
    return word.translate(confusables)


def prepare() -> None:
    """Build the Unicode tables now: lazily, the first non-ASCII query would wait ~0.7 s for them.

    Long-lived searchers (the engine, the server) call this once at start.
    """
    _mapped_characters()


_ASCII_ALNUM = re.compile(r"[0-9A-Za-z]")


def is_blank(text: str) -> bool:
    """True when normalize(text) is empty, i.e. the text is only whitespace and invisible characters.

    Fast for nearly every prompt: an ASCII letter or digit survives normalization, so
    only texts without one pay for the full normalization (which readers would otherwise
    run once more per record, beside the one computing the signals).
    """
    return _ASCII_ALNUM.search(text) is None and not normalize(text)


# Where format (Cf) and control (Cc) characters live in this Python's Unicode database: the
# basic and supplementary multilingual planes and the tag plane (pinned against a scan of
# every code point by a test). Scanning only these builds the table 5x faster, ~0.1 s less
# at the start of every process that normalizes (ingest, its workers, the server).
_PLANES_WITH_FORMAT_CHARACTERS = (range(0x00000, 0x20000), range(0xE0000, 0xF0000))


@lru_cache(maxsize=1)
def _drop_table(planes: tuple[range, ...] = _PLANES_WITH_FORMAT_CHARACTERS) -> dict[int, None]:
    """Code points that render as nothing (category Cf) or are C0/C1 controls but not whitespace."""
    drop: dict[int, None] = {}
    for code in chain.from_iterable(planes):
        category = unicodedata.category(chr(code))
        if category == "Cf" or (category == "Cc" and not chr(code).isspace()):
            drop[code] = None
    return drop


@lru_cache(maxsize=1)
def _mapped_characters() -> tuple[frozenset[str], frozenset[str]]:
    """The characters the drop table or the confusables table map, and those the latter maps."""
    folded = frozenset(map(chr, _confusables_table()))
    return folded | frozenset(map(chr, _drop_table())), folded


@lru_cache(maxsize=1)
def _confusables_table() -> dict[int, str]:
    """Map each non-ASCII homoglyph whose prototype is one ASCII letter or digit to it.

    Letters win over digits ('О' folds to 'o', not '0'), since prompts are mostly words.
    Targets are lowercase, as casefold would make them anyway.
    """
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[int, str] = {}
    for char, entries in data.items():
        if len(char) != 1 or char.isascii():
            continue
        targets = [e["c"] for e in entries if len(e["c"]) == 1 and e["c"].isascii() and e["c"].isalnum()]
        if not targets:
            continue
        letters = [t for t in targets if t.isalpha()]
        table[ord(char)] = (letters or targets)[0].lower()
    # Entries map both ways (ASCII -> homoglyph too); the ASCII side must stay itself.
    for code in range(128):
        table.pop(code, None)
    return table

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
import sys
import unicodedata
from functools import lru_cache
from importlib import resources

NORMALIZATION_VERSION = 1


def normalize(text: str) -> str:
    """Return the canonical form of text used for every similarity signal."""
    text = unicodedata.normalize("NFKC", text)
    # Fold homoglyphs both before casefold (Greek 'Η' looks like 'H', its lowercase 'η'
    # does not look like 'h') and after it (casefold can create new look-alikes).
    confusables = _confusables_table()
    text = text.translate(_drop_table()).translate(confusables).casefold().translate(confusables)
    return " ".join(text.split())


@lru_cache(maxsize=1)
def _drop_table() -> dict[int, None]:
    """Code points that render as nothing (category Cf) or are C0/C1 controls but not whitespace."""
    drop: dict[int, None] = {}
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category == "Cf" or (category == "Cc" and not chr(code).isspace()):
            drop[code] = None
    return drop


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

"""What differs between a query and a hit: the slot a campaign fills, beside the template it shares.

Campaign members share a long wrapper and differ in a slot; a preview of a hit's first words
shows only the shared part. The UI highlights the differing words, and the CLI table shows an
excerpt around them, both from diff_parts.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

Part = tuple[str, bool]  # (piece of the hit's text, whether it differs from the query)
ELLIPSIS = "…"
_CONTEXT = 24  # characters of shared text kept before the first differing word


def diff_parts(query: str, text: str) -> list[Part]:
    """The hit's text as (piece, differs-from-query) pieces: the shared template plain, slot parts marked."""
    tokens = re.split(r"(\s+)", text)
    words = [(i, t.lower()) for i, t in enumerate(tokens) if t and not t.isspace()]
    matcher = SequenceMatcher(None, query.lower().split(), [w for _, w in words], autojunk=False)
    same = {words[j][0] for block in matcher.get_matching_blocks() for j in range(block.b, block.b + block.size)}
    return [(t, bool(t) and not t.isspace() and i not in same) for i, t in enumerate(tokens) if t]


def runs(parts: list[Part]) -> list[Part]:
    """parts joined into runs: differing words with the spaces between them are one slot."""
    joined: list[Part] = []
    for i, (piece, differs) in enumerate(parts):
        between = piece.isspace() and 0 < i < len(parts) - 1 and parts[i - 1][1] and parts[i + 1][1]
        differs = differs or between
        if joined and joined[-1][1] == differs:
            joined[-1] = (joined[-1][0] + piece, differs)
        else:
            joined.append((piece, differs))
    return joined


def excerpt(parts: list[Part], width: int) -> list[Part]:
    """About width characters of the hit on one line, from a little before its first differing word.

    Whitespace runs become one space; a cut at either end is marked with an ellipsis piece, so
    a shortened text never passes for a whole one.
    """
    flat = [(" " if piece.isspace() else piece, differs) for piece, differs in parts]
    first = next((i for i, (_, differs) in enumerate(flat) if differs), 0)
    start = first
    context = 0
    while start > 0 and context + len(flat[start - 1][0]) <= _CONTEXT:
        start -= 1
        context += len(flat[start][0])
    shown: list[Part] = [(ELLIPSIS, False)] if start > 0 else []
    used = 0
    for i in range(start, len(flat)):
        piece, differs = flat[i]
        if used + len(piece) > width:
            room = width - used
            if room > 0 and not piece.isspace():  # as much of the word as fits (a long one is the slot, often)
                shown.append((piece[:room], differs))
            shown.append((ELLIPSIS, False))
            break
        shown.append((piece, differs))
        used += len(piece)
    return shown

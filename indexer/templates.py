"""Cluster explanations: the shared template with slots marked as <*>."""

from __future__ import annotations

from difflib import SequenceMatcher

SLOT = "<*>"
MAX_TEMPLATE_CHARS = 600


def extract_template(representative: str, others: list[str], *, keep_share: float = 0.6) -> tuple[str, float]:
    """Template of a cluster from its representative's words and a sample of other members.

    A word of the representative is fixed when it lines up (difflib matching blocks) with
    at least keep_share of the other members; each run of unfixed words becomes one <*>.
    Returns (template, share of the representative's words that are fixed).
    """
    words = representative.split()
    if not words:
        return "", 0.0
    if not others:
        return _shorten(" ".join(words)), 1.0
    votes = [0] * len(words)
    for other in others:
        matcher = SequenceMatcher(None, words, other.split(), autojunk=False)
        for block in matcher.get_matching_blocks():
            for i in range(block.a, block.a + block.size):
                votes[i] += 1
    fixed = _drop_stray_words([v >= keep_share * len(others) for v in votes])
    parts: list[str] = []
    for word, keep in zip(words, fixed):
        if keep:
            parts.append(word)
        elif not parts or parts[-1] != SLOT:
            parts.append(SLOT)
    return _shorten(" ".join(parts)), sum(fixed) / len(words)


def _drop_stray_words(fixed: list[bool]) -> list[bool]:
    """A lone fixed word between two slots ('<*> a <*>') is a coincidence of common words, not template."""
    out = list(fixed)
    for i in range(1, len(fixed) - 1):
        if fixed[i] and not fixed[i - 1] and not fixed[i + 1]:
            out[i] = False
    if len(fixed) > 1 and fixed[-1] and not fixed[-2]:
        out[-1] = False
    return out


def _shorten(template: str) -> str:
    """Keep both ends of a long template (wrappers live at the ends)."""
    if len(template) <= MAX_TEMPLATE_CHARS:
        return template
    half = MAX_TEMPLATE_CHARS // 2
    return f"{template[:half]} … {template[-half:]}"

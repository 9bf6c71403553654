"""What an index holds: counts, time range, settings (`promptsim stats`, GET /v1/stats)."""

from __future__ import annotations

from indexer.answers import IndexStats, index_stats

from ._index import IndexLike, opened


def stats(index: IndexLike) -> IndexStats:
    """Counts (prompts, vectors, signatures, accounts), first and last seen, and the index's settings."""
    with opened(index, with_model=False) as found:
        found.refresh()
        return index_stats(found)

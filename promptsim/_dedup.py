"""Dedup: cluster a window of traffic, flag campaigns, keep cluster ids stable across runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from indexer.campaigns import cluster_lines, nightly
from indexer.dedup import DedupSettings
from indexer.retention import purge
from search.index import PromptIndex
from search.records import parse_timestamp

from ._index import IndexLike, opened


@dataclass(frozen=True)
class DedupRun:
    """One dedup run: the clusters as clusters.jsonl holds them (member ids, template, campaign_score,
    flagged, features...), best campaign score first, and the run's statistics."""

    clusters: list[dict[str, Any]]
    stats: dict[str, Any]
    purged: dict[str, float] | None = field(default=None)  # the retention purge run first, if the index has one

    @property
    def flagged(self) -> list[dict[str, Any]]:
        """The clusters flagged as campaigns."""
        return [c for c in self.clusters if c["flagged"]]


def dedup(
    index: IndexLike,
    *,
    since: str | float | datetime | None = None,
    until: str | float | datetime | None = None,
    incremental: bool = False,
    families: bool = True,
    flag_threshold: float | None = None,
    history: bool = False,
) -> DedupRun:
    """Cluster the prompts of [since, until) into near-duplicate and template clusters; flag campaigns.

    What `promptsim dedup` does, on this machine: an index with a retention period is purged
    first; families (wrapper mining across rewordings and languages, a bundled multilingual
    model) are on by default; incremental reuses the last run and looks at newer prompts only;
    history clusters the window's prompts with their nearest siblings from the whole index.
    """
    if history and incremental:
        raise ValueError("history clusters a window with its siblings afresh; it does not combine with incremental")
    settings = DedupSettings(families=families)
    if flag_threshold is not None:
        settings = DedupSettings(families=families, flag_threshold=flag_threshold)
    purged = None
    # dedup reads the store alone; history also looks the window up in the LSHs and FAISS
    with opened(index, with_model=False, structures=history) as found:
        if found.manifest.settings.retention_days is not None:
            purged = _purge(found)
            found.refresh()
        clusters, stats = nightly(
            found,
            since=_epoch(since),
            until=_epoch(until),
            settings=settings,
            incremental=incremental,
            history=history,
        )
        lines = cluster_lines(found, clusters)
    return DedupRun(sorted(lines, key=lambda c: (-c["campaign_score"], c["cluster_id"])), stats, purged)


def _purge(found: PromptIndex) -> dict[str, float]:
    """The retention purge, on the index itself if it is writable, else on a writable opening of it."""
    if found.writable:
        return purge(found)
    with opened(found.path, writable=True, with_model=False) as writer:
        return purge(writer)


def _epoch(value: str | float | datetime | None) -> float | None:
    return None if value is None else parse_timestamp(value)

"""Ingest prompt files into an index: read, skip unchanged, embed + MinHash, store, checkpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from search.index import PromptIndex
from search.normalize import normalize
from search.records import Prompt
from search.signals import Signals, minhash_signals
from search.store import content_digest

from .reader import FieldMap, ReadReport, read_records

logger = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """Counts and where the time went."""

    read: ReadReport = field(default_factory=ReadReport)
    added: int = 0
    unchanged: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"embed": 0.0, "minhash": 0.0, "index": 0.0})

    def to_json(self) -> dict[str, object]:
        return {
            "records": self.read.records,
            "added": self.added,
            "unchanged": self.unchanged,
            "skipped": self.read.skipped,
            "skip_reasons": dict(self.read.reasons),
            "problems": [str(p) for p in self.read.problems[:20]],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def batched(items: Iterable[Prompt], size: int) -> Iterator[list[Prompt]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def ingest_files(
    index: PromptIndex,
    paths: list[Path],
    *,
    fmt: str | None = None,
    fields: FieldMap = FieldMap(),
    strict: bool = False,
    batch_size: int = 256,
    checkpoint_every: int = 20_000,
    progress: bool = True,
) -> IngestReport:
    """Upsert every valid record of paths into index; each batch is acknowledged when stored."""
    report = IngestReport()
    records = read_records(paths, report.read, fmt=fmt, fields=fields, strict=strict)
    since_checkpoint = 0
    with tqdm(desc="ingest", unit=" prompts", disable=not progress, dynamic_ncols=True) as bar:
        for batch in batched(records, batch_size):
            changed = ingest_batch(index, batch, report)
            since_checkpoint += changed
            bar.update(len(batch))
            bar.set_postfix(added=report.added, skipped=report.read.skipped, refresh=False)
            if since_checkpoint >= checkpoint_every:
                _timed(report, "index", index.checkpoint)
                since_checkpoint = 0
    _timed(report, "index", index.checkpoint)
    logger.info(
        "ingest: %d records, %d added, %d unchanged, %d skipped",
        report.read.records,
        report.added,
        report.unchanged,
        report.read.skipped,
    )
    return report


def ingest_batch(
    index: PromptIndex, batch: list[Prompt], report: IngestReport, *, signals: Signals | None = None
) -> int:
    """Store one batch (last record wins for repeated ids); returns how many prompts changed.

    signals, when given, are the batch's precomputed signals (row-aligned with batch).
    """
    latest = {p.id: i for i, p in enumerate(batch)}
    stored = index.store.digests(list(latest))
    keep = [i for i in latest.values() if stored.get(batch[i].id) != content_digest(batch[i])]
    fresh = [batch[i] for i in keep]
    report.unchanged += len(latest) - len(fresh)
    if not fresh:
        return 0
    if signals is not None:
        _timed(report, "index", index.upsert, fresh, signals.take(keep))
        report.added += len(fresh)
        return len(fresh)
    normalized = [normalize(p.text) for p in fresh]
    vectors = _timed(report, "embed", index.require_encoder().encode, normalized)
    signatures, windows = _timed(report, "minhash", minhash_signals, normalized, index.hasher)
    _timed(report, "index", index.upsert, fresh, Signals(vectors, signatures, windows))
    report.added += len(fresh)
    return len(fresh)


def _timed(report: IngestReport, stage: str, func, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        return func(*args)
    finally:
        report.seconds[stage] += time.perf_counter() - start

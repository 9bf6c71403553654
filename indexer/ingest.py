"""Ingest prompt files into an index: read, skip unchanged, embed + MinHash, store, checkpoint."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

from search.embedding import Encoder
from search.forking import can_fork
from search.index import PromptIndex
from search.minhash import MinHasher
from search.normalize import normalize
from search.records import Prompt
from search.signals import Signals, minhash_signals

from .reader import FieldMap, ReadReport, read_records

logger = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """Counts and where the time went.

    Every record read is counted once: records = added + unchanged + repeated + skipped.
    added: stored, new or changed; unchanged: stored already as it is; repeated: its id came
    earlier in the same batch, or this run already stored it (the last record of an id wins);
    skipped: invalid, see problems.
    """

    read: ReadReport = field(default_factory=ReadReport)
    added: int = 0
    unchanged: int = 0
    repeated: int = 0
    since_row: int | None = None  # the store's last row when the run began: rows above it are this run's
    index: dict[str, int] = field(default_factory=dict)  # what the index holds after the run (PromptIndex.counts)
    seconds: dict[str, float] = field(
        default_factory=lambda: {"normalize": 0.0, "embed": 0.0, "minhash": 0.0, "index": 0.0}
    )

    def to_json(self) -> dict[str, object]:
        return {
            "records": self.read.records,
            "added": self.added,
            "unchanged": self.unchanged,
            "repeated": self.repeated,
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
    workers: int = 1,
    time_unit: str = "auto",
) -> IngestReport:
    """Upsert every valid record of paths into index; each batch is acknowledged when stored.

    With workers > 1, normalization, embedding and MinHash run in that many worker
    processes while this one reads, stores and indexes: the bulk path uses every core.
    Batches are still stored in input order. Whether the run did what was asked (anything
    stored, not too much skipped) is for indexer.ingest_check.check_ingest to say.
    """
    report = IngestReport(since_row=index.store.watermark().row)
    records = read_records(paths, report.read, fmt=fmt, fields=fields, strict=strict, time_unit=time_unit)
    since_checkpoint = 0
    with tqdm(desc="ingest", unit=" prompts", disable=not progress, dynamic_ncols=True) as bar:
        for batch, changed in _stored_batches(index, batched(records, batch_size), report, workers):
            since_checkpoint += changed
            bar.update(len(batch))
            bar.set_postfix(added=report.added, skipped=report.read.skipped, refresh=False)
            if checkpoint_due(index, since_checkpoint, checkpoint_every):
                _timed(report, "index", index.checkpoint)
                since_checkpoint = 0
    _timed(report, "index", index.checkpoint)
    report.index = index.counts()
    logger.info(
        "ingest: %d records, %d added, %d unchanged, %d repeated, %d skipped",
        report.read.records,
        report.added,
        report.unchanged,
        report.repeated,
        report.read.skipped,
    )
    return report


def checkpoint_due(index: PromptIndex, changed: int, every: int) -> bool:
    """Whether to save the derived structures after `changed` new prompts.

    Every `every` prompts, or a quarter of the index if that is more: a checkpoint rewrites
    the whole LSHs and FAISS, so a fixed interval costs quadratic time over a long ingest
    (a million prompts at 20k would write 50 ever-larger snapshots); growing it with the
    index keeps the total linear, and a crash replays at most a quarter of the index.
    """
    return changed >= max(every, len(index.vectors) // 4)


def _stored_batches(
    index: PromptIndex, batches: Iterator[list[Prompt]], report: IngestReport, workers: int
) -> Iterator[tuple[list[Prompt], int]]:
    """Store each batch (signals computed here, or by worker processes a few batches ahead)."""
    if workers <= 1:
        for batch in batches:
            yield batch, ingest_batch(index, batch, report)
        return
    first = next(batches, None)
    if first is not None:
        yield first, ingest_batch(index, first, report)
    following = next(batches, None)
    if following is None:  # one batch in all: not worth starting workers (seconds each, loading the model)
        return
    batches = chain([following], batches)
    context = _worker_context()
    init = (index.require_encoder(), index.hasher)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=init) as pool:
        pending: deque[tuple[list[Prompt], list[int], Future]] = deque()
        in_flight: dict[str, str] = {}  # id -> digest of records sent but not stored yet
        for batch in batches:
            keep = _changed(index, batch, report, in_flight)
            in_flight.update((batch[i].id, batch[i].digest) for i in keep)
            texts = [batch[i].text for i in keep]
            pending.append((batch, keep, pool.submit(_worker_signals, texts) if texts else None))
            if len(pending) > 2 * workers:  # bounded read-ahead: memory stays flat
                yield _store_computed(index, report, in_flight, *pending.popleft())
        while pending:
            yield _store_computed(index, report, in_flight, *pending.popleft())


def _changed(
    index: PromptIndex, batch: list[Prompt], report: IngestReport, in_flight: dict[str, str] | None = None
) -> list[int]:
    """Positions of the batch's prompts to store: new or changed (last record wins for an id); counts each record.

    in_flight: digests of records already on their way to the store, which count as stored,
    so workers skip exactly what one process would skip.
    """
    latest = {p.id: i for i, p in enumerate(batch)}
    report.repeated += len(batch) - len(latest)  # an id repeated later in the same batch
    stored = index.store.versions(list(latest))
    keep = []
    for pid, i in latest.items():
        this_run = pid in (in_flight or {})
        if this_run:
            before: str | None = (in_flight or {})[pid]
        else:
            before, row = stored.get(pid, (None, -1))
            this_run = report.since_row is not None and row > report.since_row
        if before != batch[i].digest:
            keep.append(i)
        if this_run:
            report.repeated += 1
        elif before == batch[i].digest:
            report.unchanged += 1
        else:
            report.added += 1
    return keep


def _store_computed(
    index: PromptIndex,
    report: IngestReport,
    in_flight: dict[str, str],
    batch: list[Prompt],
    keep: list[int],
    future: Future | None,
) -> tuple[list[Prompt], int]:
    if future is None:
        return batch, 0
    signals, seconds = future.result()
    for stage, spent in seconds.items():
        report.seconds[stage] += spent
    fresh = [batch[i] for i in keep]
    _timed(report, "index", index.upsert, fresh, signals)
    for prompt in fresh:  # stored now: the store answers for it (unless a later record is on its way)
        if in_flight.get(prompt.id) == prompt.digest:
            del in_flight[prompt.id]
    return batch, len(fresh)


_WORKER: dict[str, Any] = {}


def _worker_context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it (and Python is older than 3.12), else spawn.

    A spawned worker re-imports torch and reloads the model: ~6 s before its first batch,
    measured, which was 40% of a 21k-prompt bulk ingest (1,391 prompts/s spawned against
    2,779 forked, bench/compare.py; a static model, which needs no torch, loads in ~0.2 s).
    A forked one shares the loaded model copy-on-write and
    answers in milliseconds. Fork is safe here because each worker sets torch to one thread
    before any work (the fork hazard is the parent's OpenMP pool, which it then never
    enters), uses no lock the parent may hold, and the heap it inherits is frozen (freeze_survivors
    after each stored batch), so the children's collections do not copy it page by page.
    """
    # Children must not inherit tokenizers' thread pool (it would warn and turn itself off).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Where fork is not used (search/forking.py: torch's pool runs threads), pay the spawn instead.
    return multiprocessing.get_context("fork" if can_fork() else "spawn")


def _start_worker(encoder: Encoder, hasher: MinHasher) -> None:
    if getattr(encoder, "backend", None) != "static":  # a static model embeds in numpy: no torch to import
        import torch

        torch.set_num_threads(1)  # one core per worker process; the pool provides the parallelism
    # Workers embed with torch only: an onnxruntime session inherited across fork is not a
    # supported pattern, and a worker's batches are large (torch is faster there anyway).
    getattr(encoder, "disable_small_batch_runtime", lambda: None)()
    encoder.encode(["load the model before the first batch"])
    _WORKER.update(encoder=encoder, hasher=hasher)


def _worker_signals(texts: list[str]) -> tuple[Signals, dict[str, float]]:
    start = time.perf_counter()
    normalized = [normalize(t) for t in texts]
    embedded = time.perf_counter()
    vectors = _WORKER["encoder"].encode(normalized)
    hashed = time.perf_counter()
    signatures, windows = minhash_signals(normalized, _WORKER["hasher"])
    seconds = {"normalize": embedded - start, "embed": hashed - embedded, "minhash": time.perf_counter() - hashed}
    return Signals(vectors, signatures, windows), seconds


def ingest_batch(
    index: PromptIndex, batch: list[Prompt], report: IngestReport, *, signals: Signals | None = None
) -> int:
    """Store one batch (last record wins for repeated ids); returns how many prompts changed.

    signals, when given, are the batch's precomputed signals (row-aligned with batch).
    """
    keep = _changed(index, batch, report)
    fresh = [batch[i] for i in keep]
    if not fresh:
        return 0
    if signals is not None:
        _timed(report, "index", index.upsert, fresh, signals.take(keep))
        return len(fresh)
    normalized = _timed(report, "normalize", lambda: [normalize(p.text) for p in fresh])
    vectors = _timed(report, "embed", index.require_encoder().encode, normalized)
    signatures, windows = _timed(report, "minhash", minhash_signals, normalized, index.hasher)
    _timed(report, "index", index.upsert, fresh, Signals(vectors, signatures, windows))
    return len(fresh)


def _timed(report: IngestReport, stage: str, func, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        return func(*args)
    finally:
        report.seconds[stage] += time.perf_counter() - start

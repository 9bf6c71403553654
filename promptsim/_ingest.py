"""Adding prompts: from files (JSONL, CSV, Parquet) or from records in memory, one record contract."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from indexer.ingest import IngestReport, ingest_batch, ingest_files
from indexer.ingest_check import DEFAULT_MAX_SKIPPED, check_ingest
from indexer.reader import FieldMap, to_prompt
from search.errors import BadRecord, InputRejected
from search.index import PromptIndex
from search.manifest import IndexSettings
from search.records import Prompt

from ._index import IndexLike, writable_index

Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def ingest(
    index: IndexLike,
    paths: Paths,
    *,
    format: str | None = None,
    fields: FieldMap = FieldMap(),
    time_unit: str = "auto",
    strict: bool = False,
    max_skipped: float | None = DEFAULT_MAX_SKIPPED,
    settings: IndexSettings | None = None,
    batch_size: int = 256,
    checkpoint_every: int = 20_000,
    workers: int = 0,
    progress: bool = False,
) -> IngestReport:
    """Add prompt logs to an index (a directory, created if new, or an index opened writable).

    Records are upserted by id; bad ones are skipped and reported (strict: the first one raises
    BadRecord). Raises InputRejected, with the report as .report, when a non-empty file gave
    no valid record or more than max_skipped of the records were skipped (None: no limit):
    the valid records are stored all the same. An index this call created is removed again if
    nothing was stored. settings: for a new index (default: all-MiniLM-L6-v2, bundled).
    workers: processes computing signals (0: every core for the static model, 1 for MiniLM,
    whose torch already uses every core).
    """
    files = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    with writable_index(index, settings) as opened:
        report = ingest_files(
            opened,
            files,
            fmt=format,
            fields=fields,
            strict=strict,
            batch_size=batch_size,
            checkpoint_every=checkpoint_every,
            progress=progress,
            workers=workers or _default_workers(opened),
            time_unit=time_unit,
        )
        checked(report, fields, max_skipped)
    return report


def _default_workers(index: PromptIndex) -> int:
    backend = getattr(index.require_encoder(), "backend", "transformer")
    return (os.cpu_count() or 1) if backend == "static" else 1


def checked(report: IngestReport, fields: FieldMap, max_skipped: float | None) -> IngestReport:
    """report, or InputRejected (carrying it) if the ingest did not do what was asked."""
    try:
        check_ingest(report.read, fields, max_skipped=max_skipped)
    except InputRejected as err:
        err.report = report
        raise
    return report


def add(
    index: IndexLike,
    records: Iterable[Mapping[str, Any] | Prompt],
    *,
    time_unit: str = "auto",
    settings: IndexSettings | None = None,
) -> IngestReport:
    """Add records held in memory: dicts with the fields a JSONL line has (POST /v1/prompts'
    `prompts`), or Prompt objects. Bad records are skipped and reported, as in a file.

    Raises InputRejected if records were given but none was valid.
    """
    report = IngestReport()
    prompts = []
    for line, record in enumerate(records, 1):
        report.read.records += 1
        counts = report.read.file("records")
        counts.records += 1
        try:
            prompts.append(record if isinstance(record, Prompt) else _record(record, line, time_unit))
        except BadRecord as problem:
            report.read.bad(problem)
            continue
        report.read.valid += 1
        counts.valid += 1
    with writable_index(index, settings) as opened:
        report.since_row = opened.store.watermark().row
        for start in range(0, len(prompts), 256):
            ingest_batch(opened, prompts[start : start + 256], report)
        opened.checkpoint()
        report.index = opened.counts()
        checked(report, FieldMap(), None)
    return report


def _record(record: Mapping[str, Any], line: int, time_unit: str) -> Prompt:
    if not isinstance(record, Mapping):
        raise BadRecord("records", line, f"wrong type: a record is a dict, got {type(record).__name__}")
    return to_prompt(dict(record), FieldMap(), "records", line, time_unit=time_unit)

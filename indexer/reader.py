"""Stream prompt records from JSONL, CSV or Parquet files, validating each one.

Files are read a line (or a Parquet batch) at a time, so input size never matters for
memory. A bad record is reported with its file and line, counted and skipped; in strict
mode the first one raises BadRecord. Valid records are never dropped.

One record contract on every path (files here, POST /v1/prompts, the library): `id`, `text`,
`account_id`, `timestamp` (names remappable with FieldMap), an optional `metadata` object, and
any other field, which joins metadata. Files come as users have them: a UTF-8 byte-order mark
(Excel's CSV) is skipped, epoch times in s, ms, us or ns are told apart by magnitude.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from search.errors import BadRecord
from search.normalize import is_blank
from search.records import MAX_TEXT_CHARS, Prompt, check_metadata, identifier, parse_timestamp

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet")
_MAX_PROBLEMS_KEPT = 1000
_BOM = b"\xef\xbb\xbf"
csv.field_size_limit(16 * MAX_TEXT_CHARS)


@dataclass(frozen=True)
class FieldMap:
    """Which input column holds each required field."""

    id: str = "id"
    text: str = "text"
    account_id: str = "account_id"
    timestamp: str = "timestamp"


@dataclass
class FileCount:
    """What one input file held: records read and valid, its field names, why records were skipped."""

    records: int = 0
    valid: int = 0
    columns: tuple[str, ...] = ()
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> its first full message


@dataclass
class ReadReport:
    """What was read: counts, reasons, the first problems with their locations, and counts per file."""

    records: int = 0
    valid: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    problems: list[BadRecord] = field(default_factory=list)
    files: dict[str, FileCount] = field(default_factory=dict)

    def bad(self, problem: BadRecord) -> None:
        self.skipped += 1
        reason = problem.reason.split(":")[0]
        self.reasons[reason] += 1
        counts = self.file(problem.source)
        counts.reasons[reason] += 1
        counts.examples.setdefault(reason, problem.reason)
        if len(self.problems) < _MAX_PROBLEMS_KEPT:
            self.problems.append(problem)
        logger.info("skipped %s", problem)

    def file(self, name: str) -> FileCount:
        return self.files.setdefault(name, FileCount())


def detect_format(path: Path) -> str:
    """jsonl, csv or parquet from the file name (.gz allowed for jsonl and csv)."""
    name = path.name.lower().removesuffix(".gz")
    for suffix, fmt in (
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
        (".csv", "csv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
    ):
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"cannot tell the format of {path}; pass --format {'|'.join(FORMATS)}")


def read_records(
    paths: list[Path],
    report: ReadReport,
    *,
    fmt: str | None = None,
    fields: FieldMap = FieldMap(),
    strict: bool = False,
    time_unit: str = "auto",
) -> Iterator[Prompt]:
    """Yield every valid record of every file, in order; problems go to report (or raise if strict).

    time_unit: how epoch numbers are read ("auto" tells s, ms, us and ns apart by magnitude).
    """
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"input file {path} does not exist")
        kind = fmt or detect_format(path)
        rows = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}[kind](path)
        counts = report.file(str(path))
        for line, row in rows:
            report.records += 1
            counts.records += 1
            if not counts.columns and isinstance(row, dict):
                counts.columns = tuple(map(str, row))
            try:
                if isinstance(row, BadRecord):
                    raise row
                prompt = to_prompt(row, fields, str(path), line, time_unit=time_unit)
            except BadRecord as problem:
                if strict:
                    raise
                report.bad(problem)
                continue
            report.valid += 1
            counts.valid += 1
            yield prompt


def _open_binary(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))  # a binary file; typeshed's GzipFile is not declared IO[bytes]
    return open(path, "rb")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRecord]]:
    with _open_binary(path) as handle:
        yield from jsonl_rows(str(path), handle)


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRecord]]:
    with _open_binary(path) as handle:
        yield from csv_rows(str(path), handle)


def jsonl_rows(name: str, lines: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any] | BadRecord]]:
    """(line number, row or what is wrong with it) of JSON Lines read from any binary source."""
    for line, raw in enumerate(lines, 1):
        if line == 1 and raw.startswith(_BOM):  # a byte-order mark, as some Windows tools write
            raw = raw[len(_BOM) :]
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            yield line, BadRecord(name, line, f"invalid UTF-8: byte {err.start}")
            continue
        except json.JSONDecodeError as err:
            yield line, BadRecord(name, line, f"invalid JSON: {err.msg}")
            continue
        yield line, row if isinstance(row, dict) else BadRecord(name, line, "wrong type: not a JSON object")


def csv_rows(name: str, raw: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | BadRecord]]:
    """(line number, row or what is wrong with it) of CSV read from any binary stream."""
    # surrogateescape keeps bad bytes visible as lone surrogates, reported per record by to_prompt.
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name.
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.DictReader(text)
    try:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield reader.line_num, BadRecord(name, reader.line_num, f"invalid CSV: {err}")
                continue
            if None in row:
                yield reader.line_num, BadRecord(name, reader.line_num, "invalid CSV: more fields than the header")
                continue
            yield reader.line_num, row
    finally:
        text.detach()  # the caller opened the stream and closes it


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRecord]]:
    import pyarrow.parquet as pq

    line = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            line += 1
            yield line, row


def to_prompt(row: dict[str, Any], fields: FieldMap, source: str, line: int, *, time_unit: str = "auto") -> Prompt:
    """Validate one input row into a Prompt, or raise BadRecord saying what is wrong."""

    def bad(reason: str) -> BadRecord:
        return BadRecord(source, line, reason)

    prompt_id = _identifier(row.get(fields.id), fields.id, bad)
    account = _identifier(row.get(fields.account_id), fields.account_id, bad)
    text = row.get(fields.text)
    if text is None:
        raise bad(f"missing text: no '{fields.text}' field")
    if not isinstance(text, str):
        raise bad(f"wrong type: '{fields.text}' must be a string, got {type(text).__name__}")
    _check_clean(text, fields.text, bad)
    if len(text) > MAX_TEXT_CHARS:
        raise bad(f"text too long: {len(text)} characters (limit {MAX_TEXT_CHARS})")
    if is_blank(text):
        raise bad("empty text: nothing left after removing whitespace and invisible characters")
    try:
        timestamp = parse_timestamp(row.get(fields.timestamp), time_unit)
    except ValueError as err:
        raise bad(f"bad timestamp: {err}") from None
    try:
        metadata = record_metadata(row, {fields.id, fields.text, fields.account_id, fields.timestamp})
    except ValueError as err:
        raise bad(f"bad metadata: {err}") from None
    return Prompt(prompt_id, text, account, timestamp, metadata)


def record_metadata(row: dict[str, Any], taken: set[str]) -> dict[str, Any]:
    """A record's metadata: its `metadata` object, joined by every field that is not one of taken.

    The same on every path (files, HTTP, library): an extra column is kept, never refused. A
    field given both at the top level and inside `metadata` is refused (which one is meant?).
    In CSV, `metadata` is a cell holding a JSON object (or empty).
    """
    extra = {k: v for k, v in row.items() if k not in taken and k != METADATA}
    given = row.get(METADATA) if METADATA not in taken else None
    if isinstance(given, str):
        given = _json_object(given) if given.strip() else None
    if given is None:
        inner: dict[str, Any] = {}
    elif isinstance(given, dict):
        inner = given
    else:
        raise ValueError(f"'{METADATA}' must be a JSON object, got {type(given).__name__}")
    both = sorted(set(inner) & set(extra))
    if both:
        raise ValueError(f"{', '.join(map(repr, both))} given both as a field and inside '{METADATA}'; keep one")
    return check_metadata({**inner, **extra})


METADATA = "metadata"


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"'{METADATA}' must hold a JSON object, got {text[:40]!r}") from None


def _identifier(value: Any, name: str, bad: Any) -> str:
    if value is None or value == "":
        raise bad(f"missing {name}")
    try:
        text = identifier(value, name)
    except ValueError as err:
        raise bad(f"wrong type: {err}") from None
    _check_clean(text, name, bad)
    return text


def _check_clean(text: str, name: str, bad: Any) -> None:
    if "\x00" in text:
        raise bad(f"NUL byte in '{name}'")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad(f"invalid UTF-8 in '{name}' (undecodable bytes or a lone surrogate)") from None

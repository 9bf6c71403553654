"""Did an ingest do what was asked? If not, say why in one line, and how to fix it.

A nightly job that reads a file whose columns are named differently, or whose times are in
milliseconds, skips every record; reporting success would ingest nothing every night, green.
So an ingest fails (InputRejected) when a non-empty file gave no valid record, or when more
than max_skipped of all records were skipped. The valid records are stored either way.
"""

from __future__ import annotations

from search.errors import InputRejected

from .reader import FieldMap, FileCount, ReadReport

DEFAULT_MAX_SKIPPED = 0.5  # more than half the records bad: the input is not what it is taken for

# Column names log exports commonly use for each field, to suggest the right --*-field option.
_ALIASES = {
    "id": ("prompt_id", "request_id", "message_id", "uuid", "_id", "key", "event_id"),
    "text": ("prompt", "content", "message", "input", "query", "question", "body", "prompt_text"),
    "account_id": ("user_id", "user", "account", "customer_id", "org_id", "client_id", "api_key_id", "userid"),
    "timestamp": ("created_at", "created", "time", "ts", "date", "datetime", "event_time", "request_time"),
}
_OPTIONS = {"id": "--id-field", "text": "--text-field", "account_id": "--account-field", "timestamp": "--time-field"}


def check_ingest(report: ReadReport, fields: FieldMap = FieldMap(), *, max_skipped: float | None) -> None:
    """Raise InputRejected if a non-empty file gave nothing, or the skipped share passed max_skipped."""
    for name, counts in report.files.items():
        if counts.records and not counts.valid:
            held = "its one record was not" if counts.records == 1 else f"none of its {counts.records} records was"
            raise InputRejected(f"{name}: {held} stored: {diagnose(counts, fields)}")
    if max_skipped is None or not report.records:
        return
    share = report.skipped / report.records
    if share > max_skipped:
        top = ", ".join(f"{n} {reason}" for reason, n in report.reasons.most_common(3))
        raise InputRejected(
            f"{report.skipped} of {report.records} records skipped ({share:.0%}: {top}), more than "
            f"--max-skipped {max_skipped:g} allows; the valid ones are stored. Fix the input, or pass "
            "--max-skipped 1 to accept it"
        )


def diagnose(counts: FileCount, fields: FieldMap) -> str:
    """Why a file's records were all skipped, and the fix: a field it lacks, else its commonest problem."""
    missing = [f for f in ("id", "text", "account_id", "timestamp") if getattr(fields, f) not in counts.columns]
    if counts.columns and missing:
        fixes = " ".join(_field_fix(f, counts.columns) for f in missing)
        shown = ", ".join(counts.columns[:12]) + (", …" if len(counts.columns) > 12 else "")
        lacks = ", ".join(repr(getattr(fields, f)) for f in missing)
        return f"no {lacks} field (its fields: {shown}); name the columns: {fixes}"
    if not counts.reasons:
        return "no record was valid"
    reason, n = counts.reasons.most_common(1)[0]
    return f"{n} × {counts.examples[reason]}"


def _field_fix(name: str, columns: tuple[str, ...]) -> str:
    lowered = {c.lower(): c for c in columns}
    guess = next((lowered[a] for a in _ALIASES[name] if a in lowered), None)
    return f"{_OPTIONS[name]} {guess or 'COLUMN'}"

"""Request and response bodies of the HTTP API (pydantic).

Requests are strict: unknown fields are refused, and every rule the server applies is in the
schema itself (exclusive `text`/`prompt_id` as two shapes, timestamps by pattern and range,
no NUL bytes), so what the spec calls valid the server accepts, and the reverse.
Responses are the library's typed records themselves (indexer.answers, indexer.cluster_records).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from indexer.answers import IngestOutcome, SearchAnswer
from indexer.cluster_records import Cluster
from indexer.triage_store import VerdictRecord, WatchAccount
from indexer.watchlist import WatchEntry

MAX_TEXT = 100_000
MAX_EPOCH = 32503680000.0  # 3000-01-01, as search.records
_DAY = r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
_YEAR = r"(?:197[1-9]|19[89]\d|2[0-8]\d\d|29[0-8]\d|299[0-8])"
_LEAP_DAY = r"(?:19(?:7[26]|8[048]|9[26])|2\d(?:0[48]|[2468][048]|[13579][26])|2[048]00)-02-29"
_TIME = r"(?:T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?)?"
ISO_PATTERN = rf"^(?:{_YEAR}-{_DAY}|{_LEAP_DAY}){_TIME}$"
NO_NUL = r"^[^\x00]*$"


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: 5 and 5.0, never true (strict mode refuses the rest)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_json_integer)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT, pattern=NO_NUL)]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=NO_NUL)]
IsoTime = Annotated[str, StringConstraints(pattern=ISO_PATTERN)]
Note = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$"),
    Field(description="why: who runs it, what it is (not blank)"),
]
EpochSeconds = Annotated[float, Field(strict=True, ge=0.0, lt=MAX_EPOCH)]
Timestamp = Annotated[
    IsoTime | EpochSeconds,
    Field(description="ISO-8601 (years 1971-2998, Z or an offset; naive is UTC) or epoch seconds"),
]


class Strict(BaseModel):
    """JSON as JSON Schema reads it: no unknown fields, no true for 1, no "5" for 5."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Filters(Strict):
    account_ids: list[Ident] = Field(default_factory=list, max_length=1000)
    exclude_account_ids: list[Ident] = Field(default_factory=list, max_length=1000)
    since: Timestamp | None = Field(None, description="inclusive")
    until: Timestamp | None = Field(None, description="exclusive")


class _Query(Strict):
    k: Integer = Field(20, ge=1, le=1000)
    min_score: float = Field(0.0, ge=0.0, le=1.0)
    filters: Filters = Field(default_factory=lambda: Filters(since=None, until=None))


class TextSearch(_Query):
    """Siblings of a text."""

    text: Text


class IdSearch(_Query):
    """Siblings of a stored prompt (itself excluded)."""

    prompt_id: Ident


SearchRequest = TextSearch | IdSearch


class BatchRequest(Strict):
    queries: list[TextSearch | IdSearch] = Field(min_length=1, max_length=256)


class PromptIn(Strict):
    id: Ident
    text: Text
    account_id: Ident
    timestamp: Timestamp
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="a JSON object: at most 16 levels deep and 64 KiB as JSON"
    )


class PromptsRequest(Strict):
    prompts: list[PromptIn] = Field(min_length=1, max_length=1000)


class VerdictRequest(Strict):
    """An analyst's verdict on a cluster's family, and why."""

    verdict: Literal["confirmed", "dismissed"]
    note: Note


# -- responses -------------------------------------------------------------------------------
# Prompts, hits, clusters and stats are the library's own typed records (indexer.answers,
# indexer.cluster_records), used as response models directly: one definition, no mirror to drift.


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class BatchResponse(Out):
    responses: list[SearchAnswer]


class Skipped(Out):
    id: str
    reason: str


class PromptsResponse(Out):
    results: list[IngestOutcome]
    skipped: list[Skipped]


class Deleted(Out):
    deleted: int


class ClusterPage(Out):
    clusters: list[Cluster]
    next_cursor: str | None


class VerdictPage(Out):
    verdicts: list[VerdictRecord]
    next_cursor: int | None


class WatchList(Out):
    entries: list[WatchEntry]


class WatchAccounts(Out):
    watch_id: str
    accounts: list[WatchAccount]


class SnapshotMade(Out):
    name: str
    sha256: str
    files: list[str]
    created_at: float


class SnapshotEntry(Out):
    name: str
    bytes: int


class SnapshotList(Out):
    snapshots: list[SnapshotEntry]


class Restored(Out):
    restored: str
    snapshot_created_at: float
    prompts: int
    consistent: bool


class Status(Out):
    status: str


class ValidationIssue(BaseModel):
    loc: list[str]
    msg: str


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    detail: list[ValidationIssue] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody

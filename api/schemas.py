"""Request and response bodies of the HTTP API (pydantic).

Requests are the one contract of promptsim/contract.py, which the CLI and the library validate
with too: strict, every rule the server applies in the schema itself (exclusive `text`/`prompt_id`
as two shapes, timestamps by pattern and range, no NUL bytes, a query with something visible
in it), so what the spec calls valid the server accepts, and the reverse. Responses are the
library's typed records themselves (indexer.answers, indexer.cluster_records).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from indexer.answers import BatchItem, IngestOutcome
from indexer.cluster_records import Cluster
from indexer.triage_store import VerdictRecord, WatchAccount
from indexer.watchlist import WatchEntry
from promptsim.contract import (  # the one request contract, shared with the CLI and the library
    BatchIdSearch,
    BatchQuery,
    BatchRequest,
    BatchTextSearch,
    Filters,
    IdSearch,
    PromptIn,
    PromptsRequest,
    SearchRequest,
    Strict,
    TextSearch,
)
from search.records import ISO_PATTERN

__all__ = [
    "ISO_PATTERN",
    "BatchIdSearch",
    "BatchQuery",
    "BatchRequest",
    "BatchTextSearch",
    "Filters",
    "IdSearch",
    "PromptIn",
    "PromptsRequest",
    "SearchRequest",
    "TextSearch",
    "VerdictRequest",
]

Note = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$"),
    Field(description="why: who runs it, what it is (not blank)"),
]


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
    responses: list[BatchItem]


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

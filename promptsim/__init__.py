"""promptsim as a library: open an index, ingest prompt logs, search, dedup — one import, offline.

The same contract as the CLI and the HTTP API (the same fields, defaults and errors; see
docs/api.md, "The one contract"): `search` takes what POST /v1/search takes and returns what it
answers, `search_batch` what POST /v1/search/batch takes, `add` what POST /v1/prompts takes.
The default model, all-MiniLM-L6-v2, ships inside a package and loads offline.

Example (run by tests/test_library.py):

    >>> from promptsim import add, dedup, open_index, search
    >>> report = add(path, [
    ...     {"id": "p1", "text": "Summarise this contract for me", "account_id": "a1",
    ...      "timestamp": "2026-11-20T10:00:00Z"},
    ...     {"id": "p2", "text": "Summarise this lease for me", "account_id": "a2",
    ...      "timestamp": 1795168860000, "source": "web"},   # epoch ms; source joins metadata
    ... ])
    >>> report.added, report.read.skipped
    (2, 0)
    >>> with open_index(path) as index:
    ...     answer = search(index, "Summarise this contract for me", k=2)
    >>> [hit.id for hit in answer.results], answer.verdict
    (['p1', 'p2'], 'none')
    >>> dedup(path, families=False).stats["prompts"]
    2

Errors are promptsim's (search.errors): InvalidRequest (also a ValueError) for a request the
API would answer 422, PromptNotFound, IndexNotFound, InputRejected when an ingest stored nothing
from a non-empty input or skipped more than max_skipped, BadRecord in strict mode.
"""

from __future__ import annotations

from indexer.answers import IndexStats, QueryAnswer, QueryFailed, SearchAnswer, SearchHit
from indexer.ingest import IngestReport
from indexer.reader import FieldMap
from search.errors import (
    BadRecord,
    IndexCorrupt,
    IndexLocked,
    IndexMismatch,
    IndexNotFound,
    InputRejected,
    InvalidRequest,
    PromptNotFound,
    PromptSimError,
)
from search.index import PromptIndex
from search.manifest import IndexSettings
from search.records import Prompt, parse_timestamp

from ._dedup import DedupRun, dedup
from ._delete import Deleted, delete
from ._index import open_index, rebuild
from ._ingest import add, ingest
from ._search import search, search_batch
from ._stats import stats

__all__ = [
    "BadRecord",
    "DedupRun",
    "Deleted",
    "FieldMap",
    "IndexCorrupt",
    "IndexLocked",
    "IndexMismatch",
    "IndexNotFound",
    "IndexSettings",
    "IndexStats",
    "IngestReport",
    "InputRejected",
    "InvalidRequest",
    "Prompt",
    "PromptIndex",
    "PromptNotFound",
    "PromptSimError",
    "QueryAnswer",
    "QueryFailed",
    "SearchAnswer",
    "SearchHit",
    "add",
    "dedup",
    "delete",
    "ingest",
    "open_index",
    "parse_timestamp",
    "rebuild",
    "search",
    "search_batch",
    "stats",
]

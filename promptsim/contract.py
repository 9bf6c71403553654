"""The one request contract: what a search or a record is, the same for the CLI, HTTP and the library.

Each edge validates with these models, so the fields, their defaults, their limits and the
error each bad value gets are the same everywhere: HTTP answers 422 with the problems listed,
the CLI exits with them on one line, the library raises InvalidRequest carrying them. Every
rule is in the schema itself (the OpenAPI spec is generated from these models), so what the
spec calls valid the server accepts, and the reverse.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from search.errors import InvalidRequest
from search.records import AUTO_RANGES, ISO_PATTERN, MAX_TEXT_CHARS

MAX_K = 1000
DEFAULT_K = 20
MAX_QUERIES = 256  # per batch request
MAX_PROMPTS = 1000  # per POST /v1/prompts
NO_NUL = r"^[^\x00]*$"


@lru_cache(maxsize=1)
def _blank_class() -> str:
    """A regex class of the characters that show nothing: whitespace, controls, format characters (Cf).

    Literal characters, in ranges, so Python's re, Rust's regex (pydantic) and ECMA (the spec's
    readers) all read the class the same way.
    """
    codes = [
        c
        for c in (*range(0x20000), *range(0xE0000, 0xF0000))
        if chr(c).isspace() or unicodedata.category(chr(c)) in ("Cc", "Cf")
    ]
    spans: list[list[int]] = []
    for c in codes:
        if spans and spans[-1][1] == c - 1:
            spans[-1][1] = c
        else:
            spans.append([c, c])
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in spans)


# A query must hold something to look for: at least one visible character (and, as all text, no
# NUL byte). Two patterns, both in the spec (allOf): one pattern saying both at once made the
# spec's readers (schemathesis) give up generating most queries.
VISIBLE_PATTERN = f"[^{_blank_class()}]"
_VISIBLE = re.compile(VISIBLE_PATTERN)
_INVISIBLE = "must hold at least one visible character (not only whitespace)"


def _visible(text: str) -> str:
    if not _VISIBLE.search(text):
        raise ValueError(_INVISIBLE)
    return text


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: 5 and 5.0, never true (strict mode refuses the rest)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_json_integer)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NO_NUL)]
QueryText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NO_NUL),
    AfterValidator(_visible),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_TEXT_CHARS,
            "allOf": [{"pattern": NO_NUL}, {"pattern": VISIBLE_PATTERN}],
            "description": "the prompt to find siblings of: at least one visible character, no NUL byte",
        }
    ),
]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=NO_NUL)]
RecordIdent = Annotated[
    Ident | Integer, Field(description="a string, or an integer (stored as its decimal string, as CSV gives it)")
]
IsoTime = Annotated[str, StringConstraints(pattern=ISO_PATTERN)]
# Epoch numbers in any of four units, told apart by magnitude (search.records.AUTO_RANGES).
EpochNumber = (
    Annotated[float, Field(strict=True, ge=AUTO_RANGES[0][1], lt=AUTO_RANGES[0][2])]
    | Annotated[float, Field(strict=True, ge=AUTO_RANGES[1][1], lt=AUTO_RANGES[1][2])]
    | Annotated[float, Field(strict=True, ge=AUTO_RANGES[2][1], lt=AUTO_RANGES[2][2])]
    | Annotated[float, Field(strict=True, ge=AUTO_RANGES[3][1], lt=AUTO_RANGES[3][2])]
)
Timestamp = Annotated[
    IsoTime | EpochNumber,
    Field(
        description="ISO-8601 (years 1971-2998; Z or an offset, no zone means UTC) or epoch seconds, "
        "milliseconds, microseconds or nanoseconds (told apart by magnitude)"
    ),
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
    k: Integer = Field(DEFAULT_K, ge=1, le=MAX_K, description="how many hits")
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="drop hits scoring below this")
    filters: Filters = Field(default_factory=lambda: Filters(since=None, until=None))
    full: bool = Field(False, description="whole prompt texts in the hits (else their first 200 characters)")


class TextSearch(_Query):
    """Siblings of a text."""

    text: QueryText


class IdSearch(_Query):
    """Siblings of a stored prompt (itself excluded)."""

    prompt_id: Ident


def _search_kind(body: Any) -> str:
    """Which shape a search is, so a bad one is told what is wrong with that shape only."""
    if isinstance(body, dict):
        return "IdSearch" if "prompt_id" in body and "text" not in body else "TextSearch"
    return "IdSearch" if isinstance(body, IdSearch) else "TextSearch"


SearchRequest = Annotated[
    Annotated[TextSearch, Tag("TextSearch")] | Annotated[IdSearch, Tag("IdSearch")], Discriminator(_search_kind)
]


class BatchTextSearch(TextSearch):
    """A text search in a batch; id names it in the answer (query_id)."""

    id: Ident | None = Field(None, description="echoed as query_id (default: the query's 1-based position)")


class BatchIdSearch(IdSearch):
    """A stored prompt's search in a batch; id names it in the answer (query_id)."""

    id: Ident | None = Field(None, description="echoed as query_id (default: the query's 1-based position)")


def _batch_kind(body: Any) -> str:
    if isinstance(body, dict):
        return "IdSearch" if "prompt_id" in body and "text" not in body else "TextSearch"
    return "IdSearch" if isinstance(body, BatchIdSearch) else "TextSearch"


BatchQuery = Annotated[
    Annotated[BatchTextSearch, Tag("TextSearch")] | Annotated[BatchIdSearch, Tag("IdSearch")],
    Discriminator(_batch_kind),
]


class BatchRequest(Strict):
    queries: list[BatchQuery] = Field(min_length=1, max_length=MAX_QUERIES)


class PromptIn(Strict):
    """One record: the same fields a JSONL line or a CSV row has; any other field joins metadata."""

    model_config = ConfigDict(extra="allow", strict=True)

    id: RecordIdent
    text: Text
    account_id: RecordIdent
    timestamp: Timestamp
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="a JSON object: at most 16 levels deep and 64 KiB as JSON, with the other fields",
    )

    def row(self) -> dict[str, Any]:
        """The record as a reader row: its fields, metadata and the extra fields as given."""
        return {**(self.model_extra or {}), **{name: getattr(self, name) for name in type(self).model_fields}}


class PromptsRequest(Strict):
    prompts: list[PromptIn] = Field(min_length=1, max_length=MAX_PROMPTS)


_QUERY = TypeAdapter(SearchRequest)
_BATCH_QUERY = TypeAdapter(BatchQuery)


def search_request(body: dict[str, Any]) -> TextSearch | IdSearch:
    """A search request from a JSON-like dict, validated as POST /v1/search validates it."""
    found: TextSearch | IdSearch = _validated(_QUERY, body)
    return found


def batch_query(body: Any) -> BatchTextSearch | BatchIdSearch:
    """One batch query (a line of `promptsim search --queries`), validated as POST /v1/search/batch validates it."""
    found: BatchTextSearch | BatchIdSearch = _validated(_BATCH_QUERY, body)
    return found


def _validated(adapter: TypeAdapter[Any], body: Any) -> Any:
    try:
        return adapter.validate_python(body)
    except ValidationError as err:
        raise InvalidRequest(problems(err.errors())) from None


def problems(errors: Any) -> list[tuple[list[str], str]]:
    """(location, message) of each of pydantic's errors, patterns said in words (HTTP's 422 detail too).

    The shape's tag (TextSearch, IdSearch) is left out of the location: a client never wrote it.
    """
    return [([str(p) for p in e.get("loc", ()) if p not in _TAGS], describe(e)) for e in errors]


_TAGS = ("TextSearch", "IdSearch")


_PATTERNS = {
    NO_NUL: "must not hold a NUL byte",
    ISO_PATTERN: "must be ISO-8601, e.g. 2026-11-20T10:00:00Z (no zone means UTC), or an epoch number",
}


def describe(error: Any) -> str:
    """pydantic's message for one error, except that a pattern is named by what it asks for."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in _PATTERNS:
            return _PATTERNS[pattern]
    if error.get("type") == "value_error":  # our own validators' messages, without pydantic's prefix
        return str((error.get("ctx") or {}).get("error", error.get("msg", "")))
    return str(error.get("msg", ""))

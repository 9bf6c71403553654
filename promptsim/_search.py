"""Searching from Python: one query or a batch, validated by the one contract, answered with clusters and a verdict."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from indexer.answers import QueryAnswer, QueryFailed, SearchAnswer
from search.errors import InvalidRequest
from search.index import PromptIndex

from .contract import DEFAULT_K, batch_query
from .contract import search_request as validated_request
from .queries import Query, Searcher, answer_queries, labelled

Time = str | float | int | datetime | None


# One searcher per open index, so its engine (and the family model it loads) is kept across calls.
_SEARCHERS: WeakKeyDictionary[PromptIndex, Searcher] = WeakKeyDictionary()


def searcher(index: PromptIndex) -> Searcher:
    """The searcher kept for an open index (it catches up with other writers before each search)."""
    if index not in _SEARCHERS:
        _SEARCHERS[index] = Searcher(index)
    return _SEARCHERS[index]


def search(
    index: PromptIndex,
    text: str | None = None,
    *,
    prompt_id: str | None = None,
    k: int = DEFAULT_K,
    min_score: float = 0.0,
    account_ids: Sequence[str] = (),
    exclude_account_ids: Sequence[str] = (),
    since: Time = None,
    until: Time = None,
    full: bool = False,
) -> SearchAnswer:
    """The stored siblings of text (or of the stored prompt prompt_id), best first, with a verdict.

    The fields and defaults of POST /v1/search. Raises InvalidRequest (a ValueError) for a
    request the API would answer 422, PromptNotFound for an unknown prompt_id.
    """
    body: dict[str, Any] = {"k": k, "min_score": min_score, "full": full}
    body.update({"text": text} if prompt_id is None else {"prompt_id": prompt_id})
    if text is not None and prompt_id is not None:
        body["text"] = text  # both given: the contract says which is wrong
    body["filters"] = {
        "account_ids": list(account_ids),
        "exclude_account_ids": list(exclude_account_ids),
        "since": _time(since),
        "until": _time(until),
    }
    (found,) = answer_queries(searcher(index), [validated_request(body)])
    if isinstance(found, Exception):
        raise found
    return found


def search_batch(index: PromptIndex, queries: Iterable[dict[str, Any]]) -> list[QueryAnswer | QueryFailed]:
    """Answers of several queries (the body of POST /v1/search/batch's `queries`), in order.

    A query that cannot be answered (it breaks the contract, or names an unknown prompt) gets a
    QueryFailed with the error shape of the API; the others are answered.
    """
    items = list(queries)
    parsed: list[Query | InvalidRequest] = []
    for body in items:
        try:
            parsed.append(batch_query(body))
        except InvalidRequest as err:
            parsed.append(err)
    ids = [_query_id(b, n) for n, b in enumerate(items, 1)]
    return labelled(ids, parsed, answer_queries(searcher(index), [q for q in parsed if not isinstance(q, Exception)]))


def _query_id(body: Any, position: int) -> str:
    """A query's own id if it has a usable one, else its 1-based position."""
    given = body.get("id") if isinstance(body, dict) else None
    return given if isinstance(given, str) and given else str(position)


def _time(value: Time) -> str | float | int | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return value

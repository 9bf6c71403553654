"""Answering queries, the same way on every edge: grouped into batches, one failure per bad query.

The HTTP routes, the CLI and the library all validate with promptsim.contract and answer with
answer_queries, through an IndexService: the server's, or one over an index opened here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from indexer.answers import Issue, Problem, QueryAnswer, QueryFailed, SearchAnswer
from indexer.service import IndexService
from search.engine import SearchFilters
from search.errors import InvalidRequest, PromptNotFound
from search.records import parse_timestamp

from .contract import Filters, IdSearch, TextSearch

Query = TextSearch | IdSearch


# What answers queries: the server's IndexService, or one over an index this process opened.
Searcher = IndexService


def labelled(
    ids: list[str], parsed: Sequence[Query | InvalidRequest], found: list[SearchAnswer | PromptNotFound]
) -> list[QueryAnswer | QueryFailed]:
    """Each query's answer or failure under its query_id, in input order (found: the valid queries' results)."""
    results: Iterator[SearchAnswer | PromptNotFound] = iter(found)
    out: list[QueryAnswer | QueryFailed] = []
    for query_id, query in zip(ids, parsed):
        result: SearchAnswer | Exception = query if isinstance(query, Exception) else next(results)
        out.append(_labelled(query_id, result))
    return out


def _labelled(query_id: str, result: SearchAnswer | Exception) -> QueryAnswer | QueryFailed:
    if isinstance(result, InvalidRequest):
        detail = tuple(Issue(tuple(loc), msg) for loc, msg in result.detail)
        return QueryFailed(query_id, Problem(422, "invalid_request", str(result), detail))
    if isinstance(result, PromptNotFound):
        return QueryFailed(query_id, Problem(404, "not_found", str(result)))
    if isinstance(result, Exception):
        raise result
    return QueryAnswer(**{f: getattr(result, f) for f in result.__dataclass_fields__}, query_id=query_id)


def answer_queries(searcher: Searcher, queries: Sequence[Query]) -> list[SearchAnswer | PromptNotFound]:
    """Each query's answer (or PromptNotFound for an unknown prompt_id), in order.

    Text queries sharing k, min_score, filters and full are embedded and searched as one batch
    (one model call for a whole batch, not one per query); a prompt_id query runs alone, so an
    unknown id fails that query only.
    """
    groups: dict[tuple[int, float, SearchFilters, bool], list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault((q.k, q.min_score, to_filters(q.filters), q.full), []).append(i)
    out: list[SearchAnswer | PromptNotFound | None] = [None] * len(queries)
    for (k, min_score, filters, full), members in groups.items():
        texts = [i for i in members if isinstance(queries[i], TextSearch)]
        if texts:
            found = searcher.search(
                [_text(queries[i]) for i in texts], [None] * len(texts), k, min_score, filters, full
            )
            for i, one in zip(texts, found):
                out[i] = one
        for i in (i for i in members if isinstance(queries[i], IdSearch)):
            try:
                (out[i],) = searcher.search([None], [_prompt_id(queries[i])], k, min_score, filters, full)
            except PromptNotFound as err:
                out[i] = err
    return [a for a in out if a is not None]


def to_filters(f: Filters) -> SearchFilters:
    """The contract's filters as the engine's (times as epoch seconds)."""
    return SearchFilters(
        tuple(f.account_ids),
        tuple(f.exclude_account_ids),
        None if f.since is None else parse_timestamp(f.since),
        None if f.until is None else parse_timestamp(f.until),
    )


def _text(q: Query) -> str:
    return q.text if isinstance(q, TextSearch) else ""


def _prompt_id(q: Query) -> str:
    return q.prompt_id if isinstance(q, IdSearch) else ""

"""POST /v1/search and /v1/search/batch: siblings of texts or stored prompts, with clusters and a verdict."""

from __future__ import annotations

from fastapi import APIRouter, Request

from indexer.answers import SearchAnswer
from indexer.cluster_records import JSONValue
from search.engine import SearchFilters
from search.records import parse_timestamp

from ..deps import ERRORS, KEYED, Disclose, Reader, Service
from ..disclosure import describe_text
from ..schemas import BatchRequest, BatchResponse, Filters, IdSearch, SearchRequest, TextSearch

router = APIRouter(prefix="/v1/search", tags=["search"], responses=ERRORS, dependencies=KEYED)


@router.post("", response_model=SearchAnswer)
def search(body: SearchRequest, who: Reader, svc: Service, disclosure: Disclose, request: Request) -> SearchAnswer:
    """Siblings of a text or stored prompt, their summary, the clusters they belong to, the confirmed
    family (watch entry) the text matches, and the verdict."""
    (found,) = searched(svc, [body], request)
    return disclosure.reveal(who, "POST /v1/search", audit_query(body), found)


@router.post("/batch", response_model=BatchResponse)
def search_batch(
    body: BatchRequest, who: Reader, svc: Service, disclosure: Disclose, request: Request
) -> dict[str, list[SearchAnswer]]:
    """Up to 256 searches in one request."""
    answers = searched(svc, body.queries, request)
    return {"responses": disclosure.reveal(who, "POST /v1/search/batch", {"queries": len(body.queries)}, answers)}


def searched(svc: Service, queries: list[TextSearch | IdSearch], request: Request | None = None) -> list[SearchAnswer]:
    """Each query's answer, in order; queries sharing k, min_score and filters are embedded as one batch.

    One model call for a whole batch instead of one per query: a full batch of 256 texts is
    several times faster, so it answers well within a client's timeout.
    """
    groups: dict[tuple[int, float, SearchFilters], list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault((q.k, q.min_score, filters_of(q.filters)), []).append(i)
    out: list[SearchAnswer | None] = [None] * len(queries)
    for (k, min_score, filters), members in groups.items():
        texts = [_text(queries[i]) for i in members]
        ids = [_prompt_id(queries[i]) for i in members]
        for i, found in zip(members, svc.search(texts, ids, k, min_score, filters)):
            out[i] = found
    answered = [a for a in out if a is not None]
    if request is not None:  # a query that matched a confirmed family counts as a watchlist hit
        request.app.state.triage_metrics.watch_hits.labels("search").inc(sum(a.watch is not None for a in answered))
    return answered


def _text(q: TextSearch | IdSearch) -> str | None:
    return q.text if isinstance(q, TextSearch) else None


def _prompt_id(q: TextSearch | IdSearch) -> str | None:
    return q.prompt_id if isinstance(q, IdSearch) else None


def filters_of(f: Filters) -> SearchFilters:
    return SearchFilters(
        tuple(f.account_ids),
        tuple(f.exclude_account_ids),
        None if f.since is None else parse_timestamp(f.since),
        None if f.until is None else parse_timestamp(f.until),
    )


def audit_query(q: TextSearch | IdSearch) -> dict[str, JSONValue]:
    """What the audit log keeps of a search: never the text itself."""
    described: dict[str, JSONValue] = {"k": q.k, "min_score": q.min_score}
    if isinstance(q, TextSearch):
        described.update(describe_text(q.text))
    else:
        described["prompt_id"] = q.prompt_id
    return described

"""POST /v1/search and /v1/search/batch: siblings of texts or stored prompts, with clusters and a verdict."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request

from indexer.answers import BatchItem, SearchAnswer
from indexer.cluster_records import JSONValue
from promptsim.queries import answer_queries, labelled
from search.errors import PromptNotFound

from ..deps import ERRORS, KEYED, Disclose, Reader, Service
from ..disclosure import describe_text
from ..schemas import BatchRequest, BatchResponse, IdSearch, SearchRequest, TextSearch

router = APIRouter(prefix="/v1/search", tags=["search"], responses=ERRORS, dependencies=KEYED)


@router.post("", response_model=SearchAnswer)
def search(body: SearchRequest, who: Reader, svc: Service, disclosure: Disclose, request: Request) -> SearchAnswer:
    """Siblings of a text or stored prompt, their summary, the clusters they belong to, the confirmed
    family (watch entry) the text matches, and the verdict."""
    (found,) = answer_queries(svc, [body])
    if isinstance(found, PromptNotFound):
        raise found
    _count_watch_hits(request, [found])
    return disclosure.reveal(who, "POST /v1/search", audit_query(body), found)


@router.post("/batch", response_model=BatchResponse)
def search_batch(
    body: BatchRequest, who: Reader, svc: Service, disclosure: Disclose, request: Request
) -> dict[str, list[BatchItem]]:
    """Up to 256 searches in one request; each answer carries its query_id (the query's id, else its
    1-based position). A query naming an unknown prompt gets an error entry; the others are answered."""
    ids = [q.id or str(n) for n, q in enumerate(body.queries, 1)]
    answers = answer_queries(svc, body.queries)
    _count_watch_hits(request, answers)
    found = labelled(ids, body.queries, answers)
    return {"responses": disclosure.reveal(who, "POST /v1/search/batch", {"queries": len(body.queries)}, found)}


def _count_watch_hits(request: Request, answers: Sequence[SearchAnswer | PromptNotFound]) -> None:
    """A query that matched a confirmed family counts as a watchlist hit."""
    hits = sum(isinstance(a, SearchAnswer) and a.watch is not None for a in answers)
    request.app.state.triage_metrics.watch_hits.labels("search").inc(hits)


def audit_query(q: TextSearch | IdSearch) -> dict[str, JSONValue]:
    """What the audit log keeps of a search: never the text itself."""
    described: dict[str, JSONValue] = {"k": q.k, "min_score": q.min_score}
    if isinstance(q, TextSearch):
        described.update(describe_text(q.text))
    else:
        described["prompt_id"] = q.prompt_id
    return described

"""POST /v1/search and /v1/search/batch: siblings of texts or stored prompts, with clusters and a verdict."""

from __future__ import annotations

from fastapi import APIRouter

from indexer.answers import SearchAnswer
from indexer.cluster_records import JSONValue
from search.engine import SearchFilters
from search.records import parse_timestamp

from ..deps import ERRORS, KEYED, Disclose, Reader, Service
from ..disclosure import describe_text
from ..schemas import BatchRequest, BatchResponse, Filters, IdSearch, SearchRequest, SearchResponse, TextSearch

router = APIRouter(prefix="/v1/search", tags=["search"], responses=ERRORS, dependencies=KEYED)


@router.post("", response_model=SearchResponse)
def search(body: SearchRequest, who: Reader, svc: Service, disclosure: Disclose) -> SearchAnswer:
    """Siblings of a text or stored prompt, their summary, and the clusters (with the verdict) they belong to."""
    (found,) = searched(svc, [body])
    return disclosure.reveal(who, "POST /v1/search", audit_query(body), found)


@router.post("/batch", response_model=BatchResponse)
def search_batch(body: BatchRequest, who: Reader, svc: Service, disclosure: Disclose) -> dict[str, list[SearchAnswer]]:
    """Up to 256 searches in one request."""
    found = disclosure.reveal(who, "POST /v1/search/batch", {"queries": len(body.queries)}, searched(svc, body.queries))
    return {"responses": found}


def searched(svc: Service, queries: list[TextSearch | IdSearch]) -> list[SearchAnswer]:
    """Each query on its own (k, filters and min_score may differ per query)."""
    out: list[SearchAnswer] = []
    for q in queries:
        text = q.text if isinstance(q, TextSearch) else None
        prompt_id = q.prompt_id if isinstance(q, IdSearch) else None
        out += svc.search([text], [prompt_id], q.k, q.min_score, filters_of(q.filters))
    return out


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

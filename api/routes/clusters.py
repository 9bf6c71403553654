"""/v1/clusters: the clusters of the last dedup run, masked and audited like every prompt text."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from indexer.cluster_records import Cluster, ClusterDetail
from indexer.cluster_store import CURSOR_PATTERN, page_cursor
from search.records import parse_timestamp, to_iso

from ..deps import ERRORS, KEYED, Disclose, Reader, Service
from ..errors import ApiError
from ..schemas import ISO_PATTERN, ClusterPage

router = APIRouter(prefix="/v1/clusters", tags=["clusters"], responses=ERRORS, dependencies=KEYED)
SINCE_PATTERN = f"^$|{ISO_PATTERN}"  # empty: no lower bound


@router.get("", response_model=ClusterPage)
def list_clusters(
    who: Reader,
    svc: Service,
    disclosure: Disclose,
    flagged: bool | None = None,
    min_accounts: Annotated[int, Query(ge=0, le=10**9)] = 0,
    since: Annotated[str | None, Query(pattern=SINCE_PATTERN, description="ISO-8601; last seen at or after")] = None,
    cursor: Annotated[str | None, Query(max_length=96, pattern=CURSOR_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, list[Cluster] | str | None]:
    """Clusters of the last dedup run, best campaign score first; pass next_cursor back as cursor for the next page.

    size, accounts, first_seen and last_seen count the members still stored (deletes since the run).
    """
    since_iso = to_iso(parse_timestamp(since)) if since else None
    page = svc.clusters(flagged=flagged, min_accounts=min_accounts, since=since_iso, after=cursor, limit=limit)
    query = {"flagged": flagged, "min_accounts": min_accounts, "since": since_iso, "cursor": cursor, "limit": limit}
    shown = disclosure.reveal(who, "GET /v1/clusters", query, page)
    return {"clusters": shown, "next_cursor": page_cursor(page[-1]) if len(page) == limit else None}


@router.get("/{cluster_id}", response_model=ClusterDetail)
def get_cluster(
    cluster_id: Annotated[str, Path(max_length=64)],
    who: Reader,
    svc: Service,
    disclosure: Disclose,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ClusterDetail:
    """Template, variants, examples, statistics, timeline and a page of members (audit-logged)."""
    detail = svc.cluster(cluster_id, offset=offset, limit=limit)
    if detail is None:
        raise ApiError(404, f"no cluster {cluster_id!r} in the last dedup run")
    return disclosure.reveal(who, "GET /v1/clusters/{id}", {"cluster_id": cluster_id, "offset": offset}, detail)

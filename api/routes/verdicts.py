"""Verdicts and the watchlist: POST /v1/clusters/{id}/verdict (scope triage), GET /v1/verdicts, /v1/watchlist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from indexer.triage_store import VerdictRecord
from search.records import parse_timestamp

from .. import triage
from ..deps import ERRORS, KEYED, Reader, Service, Triager
from ..errors import ApiError
from ..schemas import VerdictPage, VerdictRequest, WatchAccounts, WatchList
from .clusters import SINCE_PATTERN

router = APIRouter(tags=["verdicts"], responses=ERRORS, dependencies=KEYED)
ClusterId = Annotated[str, Path(max_length=64)]
WatchId = Annotated[str, Path(max_length=64)]


@router.post("/v1/clusters/{cluster_id}/verdict", response_model=VerdictRecord, status_code=201)
def add_verdict(
    cluster_id: ClusterId, body: VerdictRequest, who: Triager, svc: Service, request: Request
) -> VerdictRecord:
    """Record a verdict on the cluster's family: confirmed (a campaign: on the watchlist) or dismissed (benign).

    The verdict follows the family into later runs, whatever its cluster id (docs/verdicts.md).
    """
    made = triage.record(
        svc.index.path,
        who,
        "POST /v1/clusters/{id}/verdict",
        cluster_id,
        lambda: svc.record_verdict(cluster_id, body.verdict, body.note, by_key=who.key_id, by_name=who.name),
        request.app.state.triage_metrics,
    )
    if made is None:
        raise ApiError(404, f"no cluster {cluster_id!r} in the last dedup run")
    return made


@router.get("/v1/verdicts", response_model=VerdictPage)
def list_verdicts(
    who: Reader,
    svc: Service,
    family_id: Annotated[str | None, Query(max_length=64)] = None,
    cluster_id: Annotated[str | None, Query(max_length=64, description="verdicts given on this cluster")] = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, list[VerdictRecord] | int | None]:
    """Every verdict, newest first: who, when, why, on which family; pass next_cursor back as cursor."""
    page = svc.verdicts(family_id=family_id, cluster_id=cluster_id, at_most=cursor, limit=limit + 1)
    more = page[limit].verdict_id if len(page) > limit else None
    return {"verdicts": page[:limit], "next_cursor": more}


@router.get("/v1/watchlist", response_model=WatchList)
def watchlist(who: Reader, svc: Service) -> WatchList:
    """The confirmed families new prompts are checked against at ingest."""
    return WatchList(entries=svc.watchlist.listed())


@router.get("/v1/watchlist/{watch_id}/accounts", response_model=WatchAccounts)
def watch_accounts(
    watch_id: WatchId,
    who: Reader,
    svc: Service,
    since: Annotated[str | None, Query(pattern=SINCE_PATTERN, description="ISO-8601; first seen at or after")] = None,
) -> WatchAccounts:
    """Accounts first seen in a watched family since it was confirmed (at ingest or in a dedup run)."""
    found = svc.watchlist.accounts(watch_id, since=parse_timestamp(since) if since else None)
    if found is None:
        raise ApiError(404, f"no watch entry {watch_id!r} (confirm a family's cluster to watch it)")
    return WatchAccounts(watch_id=watch_id, accounts=found)

"""Stats, health, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest

from indexer.answers import IndexStats

from ..deps import ERRORS, KEYED, Reader, Service
from ..errors import ApiError
from ..schemas import Status

router = APIRouter(tags=["system"])


@router.get("/v1/stats", response_model=IndexStats, responses=ERRORS, dependencies=KEYED)
def stats(who: Reader, svc: Service) -> IndexStats:
    """Counts of what the store, FAISS and the LSH hold; model and settings (as `promptsim stats --json`)."""
    return svc.stats()


@router.get("/healthz", response_model=Status, responses={429: ERRORS[429]})
def healthz() -> Status:
    """The process is up (no auth)."""
    return Status(status="ok")


@router.get("/readyz", response_model=Status, responses={429: ERRORS[429], 503: ERRORS[503]})
def readyz(request: Request) -> Status:
    """The index is loaded and the server takes requests (no auth)."""
    if getattr(request.app.state, "service", None) is None:
        raise ApiError(503, "index not loaded yet", headers={"Retry-After": "1"})
    return Status(status="ready")


@router.get(
    "/metrics",
    response_model=None,
    responses={**ERRORS, 200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "metrics"}},
    dependencies=KEYED,
)
def metrics(request: Request, who: Reader) -> PlainTextResponse:
    """Prometheus metrics of this worker."""
    registry: CollectorRegistry = request.app.state.registry
    return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

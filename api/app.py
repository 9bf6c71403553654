"""The HTTP API: FastAPI app factory, auth, limits, one error shape, routes under /v1.

No `from __future__ import annotations` here: FastAPI must see the Annotated dependency
aliases defined inside create_app as real objects, not strings.
"""

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from search.embedding import SentenceTransformerEncoder
from search.engine import SearchFilters
from search.errors import IndexLocked, IndexNotFound, PromptNotFound, PromptSimError
from search.manifest import read_manifest
from search.records import Prompt, parse_timestamp

from . import schemas
from .audit import AUDIT_FILE, AuditLog
from .keys import ApiKey, KeyStore, verify
from .limits import BodyLimit, RateLimiter, retry_after
from .redact import redact
from .service import IndexService
from .settings import Settings

logger = logging.getLogger(__name__)
DEV_KEY = ApiKey("insecure-dev", "dev", "", ("read", "write", "admin", "raw"), 0.0)
DEV_KEYS = {"dev": DEV_KEY}
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An error response in the one shape: {"error": {status, code, message, detail}}."""

    def __init__(self, status: int, message: str, *, detail: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, headers


def error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "error": {"status": status, "code": _STATUS_CODES.get(status, "error"), "message": message, "detail": detail}
    }
    return JSONResponse(body, status_code=status, headers=headers)


class Keys:
    """The live keys, reloaded when the keys file changes (create/revoke while serving)."""

    def __init__(self, store: KeyStore):
        self._store, self._mtime, self._keys = store, -1.0, {}

    def current(self) -> dict[str, ApiKey]:
        mtime = self._store.path.stat().st_mtime if self._store.path.exists() else 0.0
        if mtime != self._mtime:
            self._keys, self._mtime = self._store.live(), mtime
        return self._keys


def create_app(settings: Settings, *, encoder: Any = None) -> FastAPI:
    """Build the app for one index directory (the encoder may be injected by tests)."""
    read_manifest(settings.index_dir)  # fail fast, with the fix, if there is no index
    keys = Keys(KeyStore(settings.keys_path))
    if not keys.current() and not settings.insecure_dev:
        raise ValueError(
            f"no API key configured in {settings.keys_path}; create one with 'promptsim keys create "
            f"--index {settings.index_dir} --name NAME --scopes read', or pass --insecure-dev"
        )
    limiter = RateLimiter(settings.rate_per_second, settings.rate_burst)
    audit = AuditLog(settings.index_dir / AUDIT_FILE)
    registry = CollectorRegistry()
    requests = Counter("promptsim_requests", "HTTP requests", ["route", "status"], registry=registry)
    latency = Histogram("promptsim_request_seconds", "HTTP latency", ["route"], registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manifest = read_manifest(settings.index_dir)
        app.state.service = IndexService(
            settings.index_dir,
            encoder or SentenceTransformerEncoder(manifest.settings.model),
            write_timeout=settings.write_lock_seconds,
        )
        yield
        app.state.service.close()

    app = FastAPI(
        title="promptsim",
        version="0.1.0",
        lifespan=lifespan,
        description="Prompt-similarity search for catching extraction campaigns.",
        responses={code: {"model": schemas.ErrorResponse} for code in (401, 403, 404, 413, 422, 429)},
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(route, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.message, err.detail, err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in err.errors()]
        return error_response(422, "the request does not match the schema", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail), None, getattr(err, "headers", None))

    @app.exception_handler(PromptSimError)
    async def domain_error(_: Request, err: PromptSimError) -> JSONResponse:
        status = (
            404 if isinstance(err, PromptNotFound | IndexNotFound) else 503 if isinstance(err, IndexLocked) else 409
        )
        return error_response(status, str(err))

    @app.exception_handler(ValueError)
    async def bad_value(_: Request, err: ValueError) -> JSONResponse:
        return error_response(422, str(err))

    def require(scope: str) -> Callable[..., ApiKey]:
        def check(request: Request) -> ApiKey:
            header = request.headers.get("authorization", "")
            live = keys.current()
            if settings.insecure_dev and not live:
                key = DEV_KEY
            else:
                token = header[7:].strip() if header[:7].lower() == "bearer " else ""
                found = verify(token, live) if token else None
                if found is None:
                    raise ApiError(
                        401,
                        "missing or invalid API key; send 'Authorization: Bearer <key>'",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                key = found
            if scope not in key.scopes:
                raise ApiError(403, f"this key lacks the '{scope}' scope")
            wait = limiter.check(key.key_id)
            if wait:
                raise ApiError(429, "rate limit exceeded for this key", headers={"Retry-After": retry_after(wait)})
            return key

        return check

    Read = Annotated[ApiKey, Depends(require("read"))]
    Write = Annotated[ApiKey, Depends(require("write"))]
    Admin = Annotated[ApiKey, Depends(require("admin"))]

    def service(request: Request) -> IndexService:
        return request.app.state.service

    Service = Annotated[IndexService, Depends(service)]

    def filters_of(f: schemas.Filters) -> SearchFilters:
        return SearchFilters(
            tuple(f.account_ids),
            tuple(f.exclude_account_ids),
            None if f.since is None else parse_timestamp(f.since),
            None if f.until is None else parse_timestamp(f.until),
        )

    def disclose(key: ApiKey, endpoint: str, query: Any, records: list[dict[str, Any]]) -> None:
        """Mask the records' text for keys without 'raw', and audit-log that prompt text left the server."""
        raw = "raw" in key.scopes
        if not raw:
            for record in records:
                record["text"] = redact(record["text"])
        audit.record(
            key_id=key.key_id, key_name=key.name, endpoint=endpoint, query=query, returned=len(records), raw=raw
        )

    def searched(svc: IndexService, queries: list[schemas.SearchRequest]) -> list[dict[str, Any]]:
        out = []
        for q in queries:  # k, filters and min_score may differ per query
            out += svc.search([q.text], [q.prompt_id], q.k, q.min_score, filters_of(q.filters))
        return out

    @app.post("/v1/search", response_model=schemas.SearchResponse, tags=["search"])
    def search(body: schemas.SearchRequest, key: Read, svc: Service) -> dict[str, Any]:
        """Siblings of a text or stored prompt, their summary, and the clusters (with verdicts) they belong to."""
        (result,) = searched(svc, [body])
        disclose(key, "POST /v1/search", body.model_dump(exclude_none=True), result["results"])
        return result

    @app.post("/v1/search/batch", response_model=schemas.BatchResponse, tags=["search"])
    def search_batch(body: schemas.BatchRequest, key: Read, svc: Service) -> dict[str, Any]:
        """Up to 256 searches in one request."""
        results = searched(svc, body.queries)
        disclose(
            key, "POST /v1/search/batch", {"queries": len(body.queries)}, [h for r in results for h in r["results"]]
        )
        return {"responses": results}

    @app.post("/v1/prompts", response_model=schemas.PromptsResponse, tags=["prompts"])
    def add_prompts(body: schemas.PromptsRequest, key: Write, svc: Service) -> dict[str, Any]:
        """Upsert up to 1,000 prompts; says per prompt whether it landed next to a flagged campaign."""
        prompts, skipped = [], []
        for p in body.prompts:
            try:
                prompts.append(Prompt(p.id, p.text, p.account_id, parse_timestamp(p.timestamp), p.metadata))
            except ValueError as err:
                skipped.append({"id": p.id, "reason": str(err)})
        results = svc.ingest(prompts) if prompts else []
        return {"results": results, "skipped": skipped}

    @app.get("/v1/prompts/{prompt_id}", tags=["prompts"])
    def get_prompt(prompt_id: Annotated[str, Path(max_length=512)], key: Read, svc: Service) -> dict[str, Any]:
        """One stored prompt with its raw text (audit-logged)."""
        body = svc.get_prompt(prompt_id)
        disclose(key, "GET /v1/prompts/{id}", prompt_id, [body])
        return body

    @app.delete("/v1/prompts/{prompt_id}", tags=["prompts"])
    def delete_prompt(prompt_id: Annotated[str, Path(max_length=512)], key: Write, svc: Service) -> dict[str, Any]:
        """Remove a prompt from every structure."""
        removed = svc.delete(prompt_id=prompt_id)
        if not removed:
            raise ApiError(404, f"no stored prompt with id {prompt_id!r}")
        return {"deleted": removed}

    @app.delete("/v1/accounts/{account_id}/prompts", tags=["prompts"])
    def delete_account(account_id: Annotated[str, Path(max_length=512)], key: Write, svc: Service) -> dict[str, Any]:
        """Remove every prompt of an account from every structure."""
        return {"deleted": svc.delete(account_id=account_id)}

    @app.get("/v1/clusters", tags=["clusters"])
    def list_clusters(
        key: Read,
        svc: Service,
        flagged: bool | None = None,
        min_accounts: Annotated[int, Query(ge=0, le=10**9)] = 0,
        since: str | None = None,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """Clusters of the last dedup run, by id; pass next_cursor back as cursor for the next page."""
        since_iso = None if since is None else _iso(since)
        page = svc.clusters(flagged=flagged, min_accounts=min_accounts, since=since_iso, after=cursor, limit=limit)
        for c in page:
            c.pop("examples", None)  # raw text lives behind /v1/clusters/{id}, which is audited
        return {"clusters": page, "next_cursor": page[-1]["cluster_id"] if len(page) == limit else None}

    @app.get("/v1/clusters/{cluster_id}", tags=["clusters"])
    def get_cluster(
        cluster_id: Annotated[str, Path(max_length=64)],
        key: Read,
        svc: Service,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Template, statistics, timeline and a page of members (raw text, audit-logged)."""
        body = svc.cluster(cluster_id, offset=offset, limit=limit)
        if body is None:
            raise ApiError(404, f"no cluster {cluster_id!r} in the last dedup run")
        if "raw" not in key.scopes:
            body["examples"] = [redact(e) for e in body.get("examples", [])]
            body["template"] = redact(body["template"])
        disclose(key, "GET /v1/clusters/{id}", {"cluster_id": cluster_id, "offset": offset}, body["members"])
        return body

    @app.post("/v1/snapshots", tags=["system"])
    def create_snapshot(key: Admin) -> dict[str, Any]:
        """Take a consistent snapshot of the index (admin), while serving and ingesting go on."""
        from indexer.snapshots import create_snapshot as snapshot

        folder = settings.index_dir / "snapshots"
        folder.mkdir(exist_ok=True)
        name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}.snapshot"
        body = snapshot(settings.index_dir, folder / name)
        return {"name": name, "sha256": body["sha256"], "files": body["files"], "created_at": body["created_at"]}

    @app.get("/v1/snapshots", tags=["system"])
    def list_snapshots(key: Admin) -> dict[str, Any]:
        """Snapshots taken through the API, oldest first (restore one with POST .../restore)."""
        folder = settings.index_dir / "snapshots"
        files = sorted(folder.glob("*.snapshot")) if folder.exists() else []
        return {"snapshots": [{"name": f.name, "bytes": f.stat().st_size} for f in files]}

    @app.post("/v1/snapshots/{name}/restore", tags=["system"])
    def restore_snapshot(
        name: Annotated[str, Path(max_length=128, pattern=r"^[0-9A-Za-z_-][0-9A-Za-z_.-]*\.snapshot$")],
        key: Admin,
        svc: Service,
    ) -> dict[str, Any]:
        """Verify a snapshot's checksums and bring the index back to it (admin).

        Writes wait while the files are swapped; searches are answered from the state before,
        then from the restored state. API keys are kept as they are now.
        """
        snapshot = settings.index_dir / "snapshots" / name
        if not snapshot.is_file():
            raise ApiError(404, f"no snapshot named {name!r}; GET /v1/snapshots lists them")
        return svc.restore(snapshot)

    @app.get("/v1/stats", tags=["system"])
    def stats(key: Read, svc: Service) -> dict[str, Any]:
        """Counts of what the store, FAISS and the LSH hold; model and settings."""
        return svc.stats()

    @app.get("/healthz", tags=["system"])
    def healthz() -> dict[str, str]:
        """The process is up (no auth)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["system"])
    def readyz(request: Request) -> dict[str, str]:
        """The index is loaded and the server takes requests (no auth)."""
        if getattr(request.app.state, "service", None) is None:
            raise ApiError(503, "index not loaded yet")
        return {"status": "ready"}

    @app.get("/metrics", tags=["system"], response_class=PlainTextResponse)
    def metrics(key: Read) -> PlainTextResponse:
        """Prometheus metrics of this worker."""
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    from .session import Sessions
    from .ui import add_ui

    add_ui(
        app,
        keys=lambda: DEV_KEYS if settings.insecure_dev and not keys.current() else keys.current(),
        sessions=Sessions(settings.index_dir / "session.secret"),
        disclose=disclose,
    )
    return app


def _iso(value: str) -> str:
    from search.records import to_iso

    return to_iso(parse_timestamp(value))


def app_from_env() -> FastAPI:
    """Uvicorn factory for `promptsim serve` (settings come through PROMPTSIM_* variables)."""
    return create_app(Settings.from_env())


__all__ = ["ApiError", "HTTPException", "app_from_env", "create_app"]

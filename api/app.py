"""The HTTP API and UI: the app factory, which only wires settings, layers, handlers and routers together.

Layers, outermost first: AuthGate (who is asking, rate limits, 401 before any body is read),
BodyLimit (413 for bodies over the cap, chunked or not), then the app's own layers
(api/middleware.py: security headers, metrics), error handlers (api/errors.py) and the routers (api/routes/).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from threadpoolctl import threadpool_limits

from indexer.service import IndexService
from search.embedding import Encoder, SentenceTransformerEncoder
from search.manifest import read_manifest

from .access_db import ACCESS_DB, AccessDb
from .audit import AUDIT_FILE, AuditLog
from .auth import AuthGate, LiveKeys
from .disclosure import Disclosure
from .errors import install_error_handlers
from .limits import BodyLimit
from .middleware import Metrics, SecurityHeaders
from .ratelimit import SharedRateLimiter
from .routes import clusters, docs, prompts, search, session, snapshots, system, ui, verdicts
from .sessions import SECRET_FILE, Sessions
from .settings import Settings, is_loopback
from .triage import TriageMetrics
from .webhook import AlertWorker, Webhook

logger = logging.getLogger(__name__)
HERE = Path(__file__).parent


def create_app(settings: Settings, *, encoder: Encoder | None = None) -> FastAPI:
    """Build the app for one index directory (the encoder may be injected by tests)."""
    keys = check_startup(settings)
    access = AccessDb(settings.index_dir / ACCESS_DB)
    app = FastAPI(
        title="promptsim", version="0.1.0", lifespan=_lifespan(settings, encoder), docs_url=None, redoc_url=None
    )
    app.state.settings, app.state.keys = settings, keys
    app.state.sessions = Sessions(access, settings.index_dir / SECRET_FILE)
    app.state.disclosure = Disclosure(AuditLog(settings.index_dir / AUDIT_FILE))
    app.state.registry = CollectorRegistry()
    app.state.triage_metrics = TriageMetrics(app.state.registry)
    install_error_handlers(app)
    for module in (search, prompts, clusters, verdicts, snapshots, system, docs, session, ui):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    docs.mount_assets(app)
    app.add_middleware(Metrics, registry=app.state.registry)
    app.add_middleware(SecurityHeaders, insecure_dev=settings.insecure_dev)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        AuthGate,
        keys=keys,
        sessions=app.state.sessions,
        limiter=SharedRateLimiter(access),
        anonymous=(settings.anonymous_rate, settings.anonymous_burst),
        insecure_dev=settings.insecure_dev,
    )
    return app


def check_startup(settings: Settings) -> LiveKeys:
    """Refuse to serve what would be unsafe: no index, no keys, or --insecure-dev off loopback or beside keys."""
    read_manifest(settings.index_dir)  # fail fast, with the fix, if there is no index
    settings.webhook()  # a bad URL or a secret file others may read: refused before serving
    keys = LiveKeys(settings.keys_path)
    live = keys.current()
    if settings.insecure_dev:
        if not is_loopback(settings.host):
            raise ValueError(
                f"--insecure-dev serves without keys, so only on loopback (127.0.0.1), not {settings.host}"
            )
        if live:
            raise ValueError(
                f"--insecure-dev serves without keys, but {settings.keys_path} has {len(live)} live keys; "
                "drop --insecure-dev, or revoke them"
            )
        logger.warning("INSECURE DEV MODE: every request is served without a key (read and write, text masked)")
    elif not live:
        raise ValueError(
            f"no API key configured in {settings.keys_path}; create one with 'promptsim keys create "
            f"--index {settings.index_dir} --name NAME --scopes read', or pass --insecure-dev (loopback only)"
        )
    return keys


def _lifespan(settings: Settings, encoder: Encoder | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        manifest = read_manifest(settings.index_dir)
        webhook = settings.webhook()
        app.state.service = IndexService(
            settings.index_dir,
            encoder or SentenceTransformerEncoder(manifest.settings.model),
            write_wait=settings.write_wait_seconds,
            watch_alerts=webhook is not None,
        )
        worker = None if webhook is None else _alert_worker(settings, webhook, app.state.triage_metrics)
        yield
        if worker is not None:
            worker.stop()
        app.state.service.close()

    return lifespan


def _alert_worker(settings: Settings, webhook: Webhook, metrics: TriageMetrics) -> AlertWorker:
    """Start this worker's alert thread (watchlist batches, delivery of the outbox)."""

    def counted(delivered: bool) -> None:
        (metrics.alert_deliveries if delivered else metrics.alert_failures).inc()

    worker = AlertWorker(settings.index_dir, webhook, batch_seconds=settings.alert_batch_seconds, on_result=counted)
    worker.start()
    return worker


def app_from_env() -> FastAPI:
    """Uvicorn factory for `promptsim serve` (settings come through PROMPTSIM_* variables)."""
    import os

    os.umask(0o077)  # every file a worker creates is its owner's alone
    # One BLAS thread for a served worker: its parallelism is its request threads and the other
    # workers. With a thread per core, each small matrix product of a search woke a thread that
    # only spun: a request cost 6.5 server CPU ms instead of 5.5 (bench/load.py, with this and the
    # one FAISS thread), family matching 26 CPU ms a query instead of 11. Set here, in the
    # worker's main thread: numpy's OpenBLAS takes a limit set from another thread for that
    # thread alone. (FAISS follows OpenMP, whose setting is per thread: IndexService.search sets
    # it in each request's thread.)
    threadpool_limits(limits=1, user_api="blas")
    return create_app(Settings.from_env())


__all__ = ["app_from_env", "check_startup", "create_app"]

"""The app's own ASGI layers: security headers on every response, and request metrics.

Plain ASGI classes rather than `@app.middleware("http")` functions: Starlette's
BaseHTTPMiddleware wraps each request in a task group and memory streams, and with two of
them the framework cost more machine time per search than the search (profiled in
docs/performance.md, "HTTP at engine speed"). These touch only the response's start message.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_DEFAULTS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on our own form
    # posts, and the same-origin check (routes/pages.py) could not tell them from a foreign site's.
    (b"referrer-policy", b"same-origin"),
)
_INSECURE_DEV = (b"x-promptsim-insecure-dev", b"no keys: local development only")


class SecurityHeaders:
    """Add the CSP and friends to every response that did not set its own (the docs page does)."""

    def __init__(self, app: ASGIApp, *, insecure_dev: bool):
        self.app, self.insecure_dev = app, insecure_dev

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in _DEFAULTS if name not in present]
                if self.insecure_dev:
                    headers.append(_INSECURE_DEV)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Metrics:
    """Count requests by route and status, and time them (the route template, never the raw path)."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry):
        self.app = app
        self.requests = Counter("promptsim_requests", "HTTP requests", ["route", "status"], registry=registry)
        self.latency = Histogram("promptsim_request_seconds", "HTTP latency", ["route"], registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the router sets it on this same scope
            self.requests.labels(route, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - start)

"""Who is asking, decided before anything reads the body: API keys, UI sessions, limits for both.

AuthGate is the outermost ASGI layer. For the API (/v1, /metrics) it verifies the bearer
key and answers 401 itself, so a malformed body from someone without a key costs nothing
and tells them nothing. Everywhere else it resolves the UI session cookie. Every request is
then charged to a rate bucket shared by all workers: the key's own (its rate was set when
it was created), or, for anyone without a valid key or session, their address's. Scopes
are checked later, per route (api/deps.py).
"""

from __future__ import annotations

import logging
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from .keys import ApiKey, KeyStore, verify
from .limits import send_error
from .ratelimit import SharedRateLimiter, retry_after
from .sessions import COOKIE, Sessions

logger = logging.getLogger(__name__)
DEV_KEY = ApiKey("insecure-dev", "dev", "", ("read", "write"), 0.0, rate=1000.0, burst=2000)
API_PREFIXES = ("/v1/", "/metrics")
UNAUTHORIZED = "missing or invalid API key; send 'Authorization: Bearer <key>'"


class LiveKeys:
    """The live keys, reloaded when the keys file changes (create/revoke while serving)."""

    def __init__(self, path: Path):
        self._store = KeyStore(path)
        self._stamp: tuple[float, int, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self.path = path

    def current(self) -> dict[str, ApiKey]:
        try:
            stat = self.path.stat()
            stamp: tuple[float, int, int] | None = (stat.st_mtime, stat.st_ino, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._keys, self._stamp = self._store.live(), stamp
        return dict(self._keys)


class AuthGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: LiveKeys,
        sessions: Sessions,
        limiter: SharedRateLimiter,
        anonymous: tuple[float, int],
        insecure_dev: bool,
    ):
        self.app, self.keys, self.sessions, self.limiter = app, keys, sessions, limiter
        self.anonymous, self.insecure_dev = anonymous, insecure_dev

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith(API_PREFIXES)
        who = DEV_KEY if self.insecure_dev else self._principal(scope, api)
        bucket, rate, burst = (
            (f"key:{who.key_id}", who.rate, who.burst) if who else (f"addr:{_client(scope)}", *self.anonymous)
        )
        wait = self.limiter.take(bucket, rate, burst)
        if wait:
            await send_error(send, 429, "rate limit exceeded; retry later", {"Retry-After": retry_after(wait)})
            return
        if api and who is None:
            await send_error(send, 401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
            return
        scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)

    def _principal(self, scope: Scope, api: bool) -> ApiKey | None:
        headers = dict(scope.get("headers") or [])
        if api:
            header = headers.get(b"authorization", b"").decode("latin-1")
            token = header[7:].strip() if header[:7].lower() == "bearer " else ""
            return verify(token, self.keys.current()) if token else None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except CookieError:  # a malformed Cookie header is the client's problem: no session
            return None
        morsel = cookie.get(COOKIE)
        return self.sessions.resolve(morsel.value if morsel else None, self.keys.current())


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"

"""Route dependencies: the principal with the scope a route needs, the index service, the disclosure path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from indexer.service import IndexService

from .disclosure import Disclosure
from .errors import ApiError
from .keys import ApiKey
from .schemas import ErrorResponse

# Documents the bearer scheme in the OpenAPI spec; the key itself is checked earlier, by api.auth.AuthGate.
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer ps_<id>_<secret>")
_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid key"},
    403: {"model": ErrorResponse, "description": "the key lacks the scope"},
    404: {"model": ErrorResponse, "description": "no such resource"},
    413: {"model": ErrorResponse, "description": "body over the limit"},
    422: {"model": ErrorResponse, "description": "the request does not match the schema"},
    429: {"model": ErrorResponse, "description": "rate limit (the key's own)", "headers": _RETRY},
    503: {"model": ErrorResponse, "description": "another process is writing, or not ready", "headers": _RETRY},
}


def require(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency: the request's principal, if it holds scope (403 otherwise)."""

    async def check(request: Request) -> ApiKey:  # async: no I/O, so no thread-pool hop per request
        who = getattr(request.state, "principal", None)
        if not isinstance(who, ApiKey):
            raise ApiError(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
        if scope not in who.scopes:
            raise ApiError(403, f"this key lacks the '{scope}' scope")
        return who

    return check


async def get_service(request: Request) -> IndexService:
    service = getattr(request.app.state, "service", None)
    if not isinstance(service, IndexService):
        raise ApiError(503, "index not loaded yet", headers={"Retry-After": "1"})
    return service


async def get_disclosure(request: Request) -> Disclosure:
    disclosure: Disclosure = request.app.state.disclosure
    return disclosure


Reader = Annotated[ApiKey, Depends(require("read"))]
Writer = Annotated[ApiKey, Depends(require("write"))]
Admin = Annotated[ApiKey, Depends(require("admin"))]
Triager = Annotated[ApiKey, Depends(require("triage"))]
KEYED = [Security(bearer)]  # router dependencies: every API route documents the bearer scheme
Service = Annotated[IndexService, Depends(get_service)]
Disclose = Annotated[Disclosure, Depends(get_disclosure)]

"""The one error shape, {"error": {status, code, message, detail}}, and the handlers that convert to it.

Domain errors (search.errors) are converted here once; nothing else builds an error body.
"""

from __future__ import annotations

import json
import sqlite3
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from promptsim.contract import problems
from search.errors import IndexLocked, IndexNotFound, InvalidRequest, PromptNotFound, PromptSimError, StorageFailed

from .schemas import ErrorBody, ErrorResponse, ValidationIssue

STATUS_CODES = {
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
    507: "insufficient_storage",
}
RETRY_WHILE_LOCKED = "1"  # seconds: a CLI ingest or another worker holds the write lock


class ApiError(Exception):
    """An error response; raised anywhere in the edge, rendered by the handler below."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        detail: list[ValidationIssue] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, headers


def error_body(status: int, message: str, detail: list[ValidationIssue] | None = None) -> bytes:
    """The error shape as JSON bytes (also used by the ASGI layers that answer before the app)."""
    body = ErrorResponse(
        error=ErrorBody(status=status, code=STATUS_CODES.get(status, "error"), message=message, detail=detail)
    )
    return json.dumps(body.model_dump(mode="json")).encode()


def error_response(
    status: int, message: str, detail: list[ValidationIssue] | None = None, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        error_body(status, message, detail), status_code=status, headers=headers, media_type="application/json"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the conversions: ours, validation, HTTP (404, 405 with Allow), promptsim's error tree."""

    async def api_error(_: Request, exc: Exception) -> Response:
        err = cast(ApiError, exc)  # registered for ApiError only
        return error_response(err.status, err.message, err.detail, err.headers)

    async def invalid(_: Request, exc: Exception) -> Response:
        err = cast(RequestValidationError, exc)
        detail = [ValidationIssue(loc=loc, msg=msg) for loc, msg in problems(err.errors())]
        return error_response(422, "the request does not match the schema", detail)

    async def http_error(request: Request, exc: Exception) -> Response:
        err = cast(StarletteHTTPException, exc)
        headers = dict(err.headers or {})
        if err.status_code == 405:  # Starlette names the first matching route's methods only
            headers["Allow"] = ", ".join(allowed_methods(request))
        if err.status_code == 400:  # a body that is not even text: as invalid as malformed JSON
            return error_response(422, "the request body is not valid JSON")
        return error_response(err.status_code, str(err.detail), None, headers)

    async def domain_error(_: Request, err: Exception) -> Response:
        if isinstance(err, PromptNotFound | IndexNotFound):
            return error_response(404, str(err))
        if isinstance(err, InvalidRequest):
            detail = [ValidationIssue(loc=loc, msg=msg) for loc, msg in err.detail]
            return error_response(422, str(err), detail)
        if isinstance(err, IndexLocked):
            return error_response(503, f"{err}; retry shortly", headers={"Retry-After": RETRY_WHILE_LOCKED})
        if isinstance(err, StorageFailed):
            return error_response(507 if err.full else 503, str(err))
        return error_response(409, str(err))

    async def storage_error(request: Request, err: Exception) -> Response:
        """A write that a full or read-only disk refused (SQLite's or the OS's error, raised past the store)."""
        found = StorageFailed.from_error(err)
        if found is None:
            raise err  # anything else stays a 500, as before
        return await domain_error(request, found)

    async def bad_value(_: Request, err: Exception) -> Response:
        return error_response(422, str(err))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(PromptSimError, domain_error)
    app.add_exception_handler(ValueError, bad_value)
    app.add_exception_handler(sqlite3.OperationalError, storage_error)
    app.add_exception_handler(OSError, storage_error)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, BaseRoute) and route.matches(request.scope)[0] != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def json_error(status: int, message: str) -> JSONResponse:
    """For code paths that must return a JSONResponse type."""
    return JSONResponse(json.loads(error_body(status, message)), status_code=status)

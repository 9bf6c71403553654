"""What every UI page shares: the signed-in key, the template renderer, same-origin checks, forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..keys import ApiKey

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))


def signed_in(request: Request) -> ApiKey | None:
    """The key behind the request's session (resolved by api.auth.AuthGate), if it may read."""
    who = getattr(request.state, "principal", None)
    return who if isinstance(who, ApiKey) and "read" in who.scopes else None


def page(request: Request, name: str, key: ApiKey | None, status: int = 200, **context: Any) -> HTMLResponse:
    dev = bool(request.app.state.settings.insecure_dev)
    return TEMPLATES.TemplateResponse(request, name, {"key": key, "dev": dev, **context}, status_code=status)


def to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def same_origin(request: Request) -> Response | None:
    """None if a form POST comes from this site (Origin, else Referer, names our host); else a 403 page.

    SameSite=Strict cookies already stop most cross-site posts; this also covers sign-in,
    which has no cookie yet (login CSRF), and browsers that ignore SameSite.
    """
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    parts = urlsplit(source)
    if parts.netloc and parts.netloc == request.headers.get("host") and parts.scheme in ("http", "https"):
        return None
    return page(request, "login.html", None, 403, error="That form was not sent from this site.")


def form_sender(request: Request) -> ApiKey | Response:
    """The signed-in key behind a form POST from this site, or the response that turns it away."""
    key = signed_in(request)
    if key is None:
        return to_login()
    return same_origin(request) or key


def form_of(body: bytes) -> dict[str, str]:
    """An urlencoded form (no python-multipart needed); invalid UTF-8 is replaced, never fatal."""
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}

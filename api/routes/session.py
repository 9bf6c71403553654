"""Sign in and out of the analyst UI: server-side sessions, same-origin form posts only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..keys import verify
from ..sessions import COOKIE, LIFETIME, Sessions
from .pages import form_of, page, same_origin, signed_in

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request) -> Response:
    if signed_in(request):
        return RedirectResponse("/", status_code=303)
    return page(request, "login.html", None)


@router.post("/login")
async def login(request: Request) -> Response:
    """Trade an API key (read scope) for a session cookie; the key never appears in a URL."""
    refused = same_origin(request)
    if refused:
        return refused
    form = form_of(await request.body())
    key = verify(form.get("key", ""), request.app.state.keys.current())
    if key is None or "read" not in key.scopes:
        return page(request, "login.html", None, 401, error="That key was not accepted (it needs the read scope).")
    sessions: Sessions = request.app.state.sessions
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        sessions.open(key),
        max_age=LIFETIME,
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.secure_cookies or request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session on the server (a copied cookie stops working too) and drop the cookie."""
    refused = same_origin(request)
    if refused:
        return refused
    sessions: Sessions = request.app.state.sessions
    sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response

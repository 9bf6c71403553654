"""The analyst UI: server-rendered pages (Jinja2, no JavaScript) on the API's app, behind the same keys.

Sign-in takes an API key and sets an HttpOnly, SameSite=Strict session cookie (api/session.py);
keys never appear in URLs. Every page sends a strict Content-Security-Policy (no scripts at
all), prompt text is autoescaped, and text is masked for keys without the `raw` scope and
audit-logged like the JSON API.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from indexer.charts import stacked_days_svg
from indexer.cluster_store import clusters_of_ids
from search.engine import SearchFilters
from search.errors import PromptSimError
from search.manifest import STORE
from search.records import parse_timestamp

from .keys import ApiKey, verify
from .session import COOKIE, LIFETIME, Sessions

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
Disclose = Callable[[ApiKey, str, Any, list[dict[str, Any]]], None]


def add_ui(
    app: FastAPI,
    *,
    keys: Callable[[], dict[str, ApiKey]],
    sessions: Sessions,
    disclose: Disclose,
    secure_cookie: bool = False,
) -> None:
    """Register the pages and static files on app."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    def signed_in(request: Request) -> ApiKey | None:
        key = sessions.resolve(request.cookies.get(COOKIE), keys())
        return key if key is not None and "read" in key.scopes else None

    def page(request: Request, name: str, key: ApiKey | None, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"key": key, **context}, status_code=status)

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        return RedirectResponse("/", status_code=303) if signed_in(request) else page(request, "login.html", None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = _form(await request.body())
        key = verify(form.get("key", ""), keys())
        if key is None or "read" not in key.scopes:
            return page(request, "login.html", None, 401, error="That key was not accepted (it needs the read scope).")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            sessions.issue(key),
            max_age=LIFETIME,
            httponly=True,
            samesite="strict",
            secure=secure_cookie,
            path="/",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = to_login()
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", include_in_schema=False)
    def search_page(request: Request) -> Response:
        key = signed_in(request)
        return page(request, "search.html", key, form=_blank_form()) if key else to_login()

    @app.post("/", include_in_schema=False)
    async def search(request: Request) -> Response:
        key = signed_in(request)
        if key is None:
            return to_login()
        form = {**_blank_form(), **_form(await request.body())}
        try:
            context = await run_in_threadpool(_search, request.app.state.service, key, form, disclose)
        except (ValueError, PromptSimError) as err:
            return page(request, "search.html", key, 422, form=form, error=str(err))
        return page(request, "search.html", key, form=form, **context)

    @app.get("/campaigns", include_in_schema=False)
    def campaigns(request: Request, sort: str = "score") -> Response:
        key = signed_in(request)
        if key is None:
            return to_login()
        rows = request.app.state.service.clusters(flagged=True, min_accounts=0, since=None, after=None, limit=10_000)
        order = {"score": "campaign_score", "accounts": "accounts", "size": "size", "recent": "last_seen"}
        rows.sort(key=lambda c: c[order.get(sort, "campaign_score")], reverse=True)
        return page(request, "campaigns.html", key, clusters=rows)

    @app.get("/campaigns/{cluster_id}.{fmt}", include_in_schema=False)
    def export(request: Request, cluster_id: str, fmt: str) -> Response:
        key = signed_in(request)
        if key is None:
            return to_login()
        body = request.app.state.service.cluster(cluster_id, offset=0, limit=1_000_000)
        if body is None or fmt not in ("csv", "json"):
            return page(request, "login.html" if key is None else "campaigns.html", key, 404, clusters=[])
        disclose(key, f"GET /campaigns/{{id}}.{fmt}", {"cluster_id": cluster_id}, body["members"])
        headers = {"Content-Disposition": f'attachment; filename="{cluster_id}.{fmt}"'}
        if fmt == "json":
            return JSONResponse(body, headers=headers)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["id", "account_id", "timestamp", "text"])
        writer.writeheader()
        writer.writerows(body["members"])
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)

    @app.get("/campaigns/{cluster_id}", include_in_schema=False)
    def campaign(request: Request, cluster_id: str) -> Response:
        key = signed_in(request)
        if key is None:
            return to_login()
        body = request.app.state.service.cluster(cluster_id, offset=0, limit=20)
        if body is None:
            return page(request, "campaigns.html", key, 404, clusters=[])
        disclose(key, "GET /campaigns/{id}", {"cluster_id": cluster_id}, body["members"])
        series = {
            "prompts": [parse_timestamp(d["day"] + "T12:00:00Z") for d in body["timeline"] for _ in range(d["prompts"])]
        }
        return page(request, "campaign.html", key, c=body, chart=stacked_days_svg(series))

    @app.get("/accounts/{account_id}", include_in_schema=False)
    def account(request: Request, account_id: str) -> Response:
        key = signed_in(request)
        if key is None:
            return to_login()
        svc = request.app.state.service
        prompts = svc.account_prompts(account_id, limit=200)
        owners = clusters_of_ids(svc.index.path / STORE, [p["id"] for p in prompts])
        for p in prompts:
            p["cluster"] = owners.get(p["id"], {}).get("cluster_id")
        disclose(key, "GET /accounts/{id}", {"account_id": account_id}, prompts)
        return page(
            request, "account.html", key, account=account_id, prompts=prompts, total=svc.account_total(account_id)
        )


def _form(body: bytes) -> dict[str, str]:
    """An urlencoded form (no python-multipart needed); invalid UTF-8 is replaced, never fatal."""
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _blank_form() -> dict[str, str]:
    return {"text": "", "prompt_id": "", "accounts": "", "since": "", "until": ""}


def _search(svc: Any, key: ApiKey, form: dict[str, str], disclose: Disclose) -> dict[str, Any]:
    text = form["text"].replace("\x00", "").strip() or None
    prompt_id = form["prompt_id"].strip() or None
    if (text is None) == (prompt_id is None):
        raise ValueError("paste a prompt or give a stored prompt id (one of the two)")
    if text is not None and len(text) > 100_000:
        raise ValueError("that prompt is longer than 100,000 characters")
    accounts = tuple(a.strip() for a in form["accounts"].split(",") if a.strip())
    filters = SearchFilters(accounts, (), _when(form["since"]), _when(form["until"]))
    (result,) = svc.search([text], [prompt_id], 50, 0.0, filters)
    owners = clusters_of_ids(svc.index.path / STORE, [h["id"] for h in result["results"]])
    disclose(key, "POST / (ui search)", {"text": (text or "")[:200], "prompt_id": prompt_id}, result["results"])
    query = text or svc.get_prompt(prompt_id)["text"]
    hits, series = [], {}
    for h in result["results"]:
        cluster = owners.get(h["id"], {}).get("cluster_id")
        hits.append({**h, "cluster": cluster, "parts": _diff_parts(query, h["text"])})
        series.setdefault(cluster or "not clustered", []).append(parse_timestamp(h["timestamp"]))
    return {"result": result, "hits": hits, "chart": stacked_days_svg(series, title="siblings per day")}


def _when(value: str) -> float | None:
    value = value.strip()
    return None if not value else parse_timestamp(value if value[-1:] in "Zz" or "+" in value else value + "Z")


def _diff_parts(query: str, text: str) -> list[tuple[str, bool]]:
    """The hit's text as (piece, differs-from-query) pieces: the shared template plain, slot parts marked."""
    tokens = re.split(r"(\s+)", text)
    words = [(i, t.lower()) for i, t in enumerate(tokens) if t and not t.isspace()]
    matcher = SequenceMatcher(None, query.lower().split(), [w for _, w in words], autojunk=False)
    same = {words[j][0] for block in matcher.get_matching_blocks() for j in range(block.b, block.b + block.size)}
    return [(t, bool(t) and not t.isspace() and i not in same) for i, t in enumerate(tokens) if t]


__all__ = ["add_ui"]

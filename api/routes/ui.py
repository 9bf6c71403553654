"""The analyst UI: server-rendered pages (Jinja2, no JavaScript), behind the same keys as the API.

Every page's prompt text and metadata passes the one disclosure function (masked unless the
key holds raw, audit-logged), and is autoescaped; every page is rate-limited with the key's
own bucket (api.auth.AuthGate).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from indexer.charts import stacked_days_svg
from indexer.service import IndexService
from indexer.triage_store import VerdictRecord
from search.engine import SearchFilters
from search.errors import PromptSimError
from search.records import MAX_TEXT_CHARS, parse_timestamp

from .. import triage
from ..disclosure import Disclosure, describe_text
from ..keys import ApiKey
from ..slots import diff_parts
from .pages import form_of, form_sender, page, signed_in, to_login

router = APIRouter(include_in_schema=False)
NO_TRIAGE = "This key lacks the triage scope: recording verdicts needs a key with it."
SORTS = {"score": "campaign_score", "accounts": "accounts", "size": "size", "recent": "last_seen"}


def _service(request: Request) -> IndexService:
    service: IndexService = request.app.state.service
    return service


def _disclosure(request: Request) -> Disclosure:
    disclosure: Disclosure = request.app.state.disclosure
    return disclosure


@router.get("/")
def search_page(request: Request) -> Response:
    key = signed_in(request)
    return page(request, "search.html", key, form=_blank_form()) if key else to_login()


@router.post("/")
async def search(request: Request) -> Response:
    key = form_sender(request)
    if isinstance(key, Response):
        return key
    form = {**_blank_form(), **form_of(await request.body())}
    try:
        context = await run_in_threadpool(_search, _service(request), _disclosure(request), key, form)
    except (ValueError, PromptSimError) as err:
        return page(request, "search.html", key, 422, form=form, error=str(err))
    return page(request, "search.html", key, form=form, **context)


@router.get("/campaigns")
def campaigns(request: Request, sort: str = "score") -> Response:
    key = signed_in(request)
    if key is None:
        return to_login()
    rows = _service(request).clusters(flagged=True, min_accounts=0, since=None, after=None, limit=10_000)
    rows.sort(key=lambda c: getattr(c, SORTS.get(sort, "campaign_score")), reverse=True)
    shown = _disclosure(request).reveal(key, "GET /campaigns", {"sort": sort}, rows)
    return page(request, "campaigns.html", key, clusters=shown)


@router.get("/campaigns/{cluster_id}.{fmt}")
def export(request: Request, cluster_id: str, fmt: str) -> Response:
    key = signed_in(request)
    if key is None:
        return to_login()
    detail = _service(request).cluster(cluster_id, offset=0, limit=1_000_000)
    if detail is None or fmt not in ("csv", "json"):
        return page(request, "campaigns.html", key, 404, clusters=[])
    shown = _disclosure(request).reveal(key, f"GET /campaigns/{{id}}.{fmt}", {"cluster_id": cluster_id}, detail)
    headers = {"Content-Disposition": f'attachment; filename="{cluster_id}.{fmt}"'}
    if fmt == "json":
        return Response(json.dumps(asdict(shown)), media_type="application/json", headers=headers)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["id", "account_id", "timestamp", "text"])
    writer.writeheader()
    writer.writerows(asdict(m) for m in shown.members)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/campaigns/{cluster_id}")
def campaign(request: Request, cluster_id: str) -> Response:
    key = signed_in(request)
    return to_login() if key is None else _campaign_page(request, key, cluster_id)


def _campaign_page(request: Request, key: ApiKey, cluster_id: str, status: int = 200, error: str = "") -> Response:
    svc = _service(request)
    detail = svc.cluster(cluster_id, offset=0, limit=20)
    if detail is None:
        return page(request, "campaigns.html", key, 404, clusters=[])
    shown = _disclosure(request).reveal(key, "GET /campaigns/{id}", {"cluster_id": cluster_id}, detail)
    series = {"prompts": [parse_timestamp(d.day + "T12:00:00Z") for d in shown.timeline for _ in range(d.prompts)]}
    return page(
        request,
        "campaign.html",
        key,
        status,
        c=shown.cluster,
        members=shown.members,
        chart=stacked_days_svg(series),
        verdicts=svc.verdicts(cluster_id=cluster_id, family_id=None, at_most=None, limit=20),
        can_triage="triage" in key.scopes,
        error=error,
    )


@router.post("/campaigns/{cluster_id}/verdict")
async def campaign_verdict(request: Request, cluster_id: str) -> Response:
    """Confirm or dismiss the campaign's family (keys with the triage scope), then back to its page."""
    key = form_sender(request)
    if isinstance(key, Response):
        return key
    if "triage" not in key.scopes:
        return await run_in_threadpool(_campaign_page, request, key, cluster_id, 403, NO_TRIAGE)
    form = form_of(await request.body())
    svc, verdict, note = _service(request), form.get("verdict", ""), form.get("note", "")

    def make() -> VerdictRecord | None:
        return svc.record_verdict(cluster_id, verdict, note, by_key=key.key_id, by_name=key.name)

    endpoint, metrics = "POST /campaigns/{id}/verdict", request.app.state.triage_metrics
    try:
        made = await run_in_threadpool(triage.record, svc.index.path, key, endpoint, cluster_id, make, metrics)
    except ValueError as err:
        return await run_in_threadpool(_campaign_page, request, key, cluster_id, 422, str(err))
    if made is None:
        return page(request, "campaigns.html", key, 404, clusters=[])
    return RedirectResponse(f"/campaigns/{quote(cluster_id, safe='')}", status_code=303)


@router.get("/accounts/{account_id}")
def account(request: Request, account_id: str) -> Response:
    key = signed_in(request)
    if key is None:
        return to_login()
    svc = _service(request)
    prompts = svc.account_prompts(account_id, limit=200)
    owners = svc.owners([p.id for p in prompts])
    shown = _disclosure(request).reveal(key, "GET /accounts/{id}", {"account_id": account_id}, prompts)
    rows = [{**asdict(p), "cluster": owners.get(p.id)} for p in shown]
    return page(request, "account.html", key, account=account_id, prompts=rows, total=svc.account_total(account_id))


def _blank_form() -> dict[str, str]:
    return {"text": "", "prompt_id": "", "accounts": "", "since": "", "until": ""}


def _search(svc: IndexService, disclosure: Disclosure, key: ApiKey, form: dict[str, str]) -> dict[str, Any]:
    text = form["text"].replace("\x00", "").strip() or None
    prompt_id = form["prompt_id"].strip() or None
    if (text is None) == (prompt_id is None):
        raise ValueError("paste a prompt or give a stored prompt id (one of the two)")
    if text is not None and len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"that prompt is longer than {MAX_TEXT_CHARS:,} characters")
    accounts = tuple(a.strip() for a in form["accounts"].split(",") if a.strip())
    filters = SearchFilters(accounts, (), _when(form["since"]), _when(form["until"]))
    (found,) = svc.search([text], [prompt_id], 50, 0.0, filters)
    query = {**describe_text(text), "prompt_id": prompt_id}
    shown = disclosure.reveal(key, "POST / (ui search)", query, found)
    owners = svc.owners([h.id for h in shown.results])
    reference = text or svc.prompt(str(prompt_id)).text  # only compared against, never shown
    hits: list[dict[str, Any]] = []
    series: dict[str, list[float]] = {}
    for h in shown.results:
        cluster = owners.get(h.id)
        hits.append({**asdict(h), "cluster": cluster, "parts": diff_parts(reference, h.text)})
        series.setdefault(cluster or "not clustered", []).append(parse_timestamp(h.timestamp))
    return {"result": shown, "hits": hits, "chart": stacked_days_svg(series, title="siblings per day")}


def _when(value: str) -> float | None:
    value = value.strip()
    return None if not value else parse_timestamp(value if value[-1:] in "Zz" or "+" in value else value + "Z")

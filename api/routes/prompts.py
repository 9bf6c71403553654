"""/v1/prompts and /v1/accounts/{id}/prompts: upsert, read and erase prompts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from indexer.answers import IngestOutcome, PromptRecord
from indexer.reader import FieldMap, to_prompt
from search.errors import BadRecord, PromptNotFound
from search.records import check_prompt

from ..deps import ERRORS, KEYED, Disclose, Reader, Service, Writer
from ..schemas import Deleted, PromptsRequest, PromptsResponse, Skipped

router = APIRouter(tags=["prompts"], responses=ERRORS, dependencies=KEYED)
PromptId = Annotated[str, Path(max_length=512)]


@router.post("/v1/prompts", response_model=PromptsResponse)
def add_prompts(
    body: PromptsRequest, who: Writer, svc: Service, request: Request
) -> dict[str, list[IngestOutcome] | list[Skipped]]:
    """Upsert up to 1,000 prompts; says per prompt whether it landed next to a flagged campaign or
    belongs to a confirmed one (its watch entry), with verdict 'campaign' for either.

    The record contract of a JSONL line: fields other than id, text, account_id, timestamp and
    metadata join metadata. Every prompt is validated before anything is stored (the rules of
    `promptsim ingest`); one that cannot be stored is listed in skipped, with why.
    """
    prompts, skipped = [], []
    for line, p in enumerate(body.prompts, 1):
        try:
            prompts.append(check_prompt(to_prompt(p.row(), FieldMap(), "prompts", line)))
        except BadRecord as problem:
            skipped.append(Skipped(id=str(p.id), reason=problem.reason))
        except ValueError as err:
            skipped.append(Skipped(id=str(p.id), reason=str(err)))
    results = svc.ingest(prompts) if prompts else []
    request.app.state.triage_metrics.watch_hits.labels("ingest").inc(sum(r.watch is not None for r in results))
    return {"results": results, "skipped": skipped}


@router.get("/v1/prompts/{prompt_id}", response_model=PromptRecord)
def get_prompt(prompt_id: PromptId, who: Reader, svc: Service, disclosure: Disclose) -> PromptRecord:
    """One stored prompt, its text and metadata masked unless the key holds raw (audit-logged)."""
    return disclosure.reveal(who, "GET /v1/prompts/{id}", {"prompt_id": prompt_id}, svc.prompt(prompt_id))


@router.delete("/v1/prompts/{prompt_id}", response_model=Deleted)
def delete_prompt(prompt_id: PromptId, who: Writer, svc: Service) -> Deleted:
    """Erase a prompt from every structure, cluster pages included; a later restore keeps it erased."""
    removed = svc.delete(prompt_id=prompt_id)
    if not removed:
        raise PromptNotFound(f"no stored prompt with id {prompt_id!r}")
    return Deleted(deleted=removed)


@router.delete("/v1/accounts/{account_id}/prompts", response_model=Deleted)
def delete_account(account_id: PromptId, who: Writer, svc: Service) -> Deleted:
    """Erase every prompt of an account from every structure; 404 if it has none (nothing was deleted)."""
    removed = svc.delete(account_id=account_id)
    if not removed:
        raise PromptNotFound(f"no stored prompts of account {account_id!r}")
    return Deleted(deleted=removed)

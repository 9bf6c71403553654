"""The one way prompt text and metadata leave the process: masked for keys without `raw`, and audited.

Every edge that shows a prompt, a hit, a cluster's template, variants or examples, or a
prompt's metadata (JSON responses, UI pages, exports, the CLI's reports and files) passes
the typed records through `Disclosure.reveal`. It returns them masked (api/redact.py) unless
the principal holds `raw`, and writes the audit entry, so no route decides either on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from functools import singledispatch
from pathlib import Path
from typing import Any, TypeVar, cast

from indexer.answers import PromptRecord, QueryFailed, SearchAnswer
from indexer.cluster_records import Cluster, ClusterDetail, ClusterMember, JSONValue
from search.engine import Hit

from .audit import AUDIT_FILE, AuditLog
from .keys import SCOPES, ApiKey
from .redact import redact

T = TypeVar("T")
Query = Mapping[str, JSONValue]


class Disclosure:
    def __init__(self, audit: AuditLog):
        self._audit = audit

    def reveal(self, who: ApiKey, endpoint: str, query: Query, payload: T) -> T:
        """payload as who may see it (masked unless raw), after writing the audit entry."""
        self._audit.record(
            key_id=who.key_id,
            key_name=who.name,
            endpoint=endpoint,
            query=query,
            returned=prompts_in(payload),
            raw=who.raw,
        )
        return payload if who.raw else masked(payload)


def describe_text(text: str | None) -> dict[str, JSONValue]:
    """What the audit log keeps of a query text: its SHA-256 and length, never the words."""
    if text is None:
        return {}
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return {"text_sha256": digest, "text_chars": len(text)}


def masked(payload: T) -> T:
    """payload with every piece of prompt text and metadata masked (a typed front for mask)."""
    return cast(T, mask(payload))


@singledispatch
def mask(payload: Any) -> Any:
    """payload with every piece of prompt text and metadata masked; refuses a type it has no rule for."""
    raise TypeError(f"no masking rule for {type(payload).__name__}: add one before it may leave the process")


@mask.register(list)
def _(payload: list[Any]) -> list[Any]:
    return [mask(p) for p in payload]


@mask.register(tuple)
def _(payload: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(mask(p) for p in payload)


@mask.register(PromptRecord)
def _(payload: PromptRecord) -> PromptRecord:
    return replace(payload, text=redact(payload.text), metadata=mask_json(dict(payload.metadata)))


@mask.register(Hit)
def _(payload: Hit) -> Hit:
    return replace(payload, text=redact(payload.text))


@mask.register(ClusterMember)
def _(payload: ClusterMember) -> ClusterMember:
    return replace(payload, text=redact(payload.text))


@mask.register(SearchAnswer)
def _(payload: SearchAnswer) -> SearchAnswer:
    return replace(payload, results=masked(payload.results))


@mask.register(QueryFailed)
def _(payload: QueryFailed) -> QueryFailed:
    return payload  # a batch query's error: ids and reasons, no prompt text


@mask.register(Cluster)
def _(payload: Cluster) -> Cluster:
    template = None if payload.template is None else redact(payload.template)
    masked = payload.with_texts(template, tuple(map(redact, payload.variants)), tuple(map(redact, payload.examples)))
    return replace(masked, features=mask_json(dict(payload.features)))  # defensive: features hold no text


@mask.register(ClusterDetail)
def _(payload: ClusterDetail) -> ClusterDetail:
    return replace(payload, cluster=masked(payload.cluster), members=masked(payload.members))


def mask_json(value: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """A JSON object with every string value masked (keys are names, not text)."""
    return {k: _mask_value(v) for k, v in value.items()}


def _mask_value(value: JSONValue) -> JSONValue:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_mask_value(v) for v in value]
    if isinstance(value, dict):
        return mask_json(value)
    return value


@singledispatch
def prompts_in(payload: object) -> int:
    """How many prompts' text or metadata a payload carries (for the audit entry)."""
    return 0


@prompts_in.register(list)
@prompts_in.register(tuple)
def _(payload: list[object] | tuple[object, ...]) -> int:
    return sum(prompts_in(p) for p in payload)


@prompts_in.register(PromptRecord)
@prompts_in.register(Hit)
@prompts_in.register(ClusterMember)
def _(payload: object) -> int:
    return 1


@prompts_in.register(SearchAnswer)
def _(payload: SearchAnswer) -> int:
    return len(payload.results)


@prompts_in.register(Cluster)
def _(payload: Cluster) -> int:
    return len(payload.examples)


@prompts_in.register(ClusterDetail)
def _(payload: ClusterDetail) -> int:
    return len(payload.members) + len(payload.cluster.examples)


OPERATOR = ApiKey("operator", "cli", "", SCOPES, 0.0)  # whoever runs the CLI can read the index files anyway


def reveal_to_operator(index_dir: Path, endpoint: str, query: Query, payload: T) -> T:
    """The CLI's disclosure: raw (the operator owns the files), and audit-logged like any key's."""
    return Disclosure(AuditLog(index_dir / AUDIT_FILE)).reveal(OPERATOR, endpoint, query, payload)

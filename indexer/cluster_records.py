"""Typed cluster records: what the read side hands the edges (API, UI, CLI, report), never a bare dict.

Prompt text lives only in the explicit fields (`template`, `variants`, `examples`, member
`text`); `features` is an open mapping of JSON values (numbers, short strings such as `why`,
small dicts and lists of numbers and account ids) that holds no prompt text. Detection may
add feature keys at any time: they pass through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from typing_extensions import TypeAliasType

# A named recursive alias (not a plain one) so the API can use these records as response models:
# pydantic turns it into one JSON Schema definition instead of recursing forever.
JSONValue = TypeAliasType("JSONValue", "None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]")
Features: TypeAlias = Mapping[str, JSONValue]
# Keys dedup once put inside features that hold prompt text; they are moved to explicit fields.
TEXT_FEATURES = ("variants", "examples", "template")


@dataclass(frozen=True)
class Cluster:
    """One cluster of the last dedup run.

    template is null once a prompt it was drawn from is deleted, until the next dedup;
    features are statistics of the cluster, never prompt text.
    """

    cluster_id: str
    size: int
    accounts: int
    first_seen: str
    last_seen: str
    campaign_score: float
    flagged: bool
    change: str
    template: str | None
    variants: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    features: Features = field(default_factory=dict)

    def with_texts(self, template: str | None, variants: tuple[str, ...], examples: tuple[str, ...]) -> Cluster:
        """The same cluster with its prompt-text fields replaced (masking goes through here)."""
        return replace(self, template=template, variants=variants, examples=examples)


@dataclass(frozen=True)
class ClusterRef:
    """A cluster a search hit or new prompt belongs to."""

    cluster_id: str
    flagged: bool
    campaign_score: float
    hits: int = 0


@dataclass(frozen=True)
class ClusterMember:
    """A member prompt of a cluster, as listed on a cluster page."""

    id: str
    account_id: str
    timestamp: str
    text: str


@dataclass(frozen=True)
class DayCount:
    day: str
    prompts: int


@dataclass(frozen=True)
class ClusterDetail:
    """A cluster with its timeline and one page of members."""

    cluster: Cluster
    members: tuple[ClusterMember, ...]
    timeline: tuple[DayCount, ...]
    next_offset: int | None


def split_texts(body: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, list[str], list[str]]:
    """(features without text, template, variants, examples) of a cluster as dedup made it.

    Variants sit at the top level from the detection rewrite on, inside features before it.
    """
    features = dict(body.get("features") or {})
    inner = {k: features.pop(k) for k in TEXT_FEATURES if k in features}
    variants = body.get("variants") or inner.get("variants") or []
    examples = body.get("examples") or inner.get("examples") or []
    template = body.get("template", inner.get("template"))
    return features, template, [str(v) for v in variants], [str(e) for e in examples]

"""Request and response bodies of the HTTP API (pydantic); strict: unknown fields are refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT = 100_000


def clean_text(value: str | None) -> str | None:
    """Refuse NUL bytes and lone surrogates (not valid UTF-8) with a 422."""
    if value is None:
        return value
    if "\x00" in value:
        raise ValueError("text contains a NUL byte")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(Strict):
    account_ids: list[str] = Field(default_factory=list, max_length=1000)
    exclude_account_ids: list[str] = Field(default_factory=list, max_length=1000)
    since: str | float | None = Field(None, description="ISO-8601 or epoch seconds, inclusive")
    until: str | float | None = Field(None, description="ISO-8601 or epoch seconds, exclusive")

    _clean = field_validator("account_ids", "exclude_account_ids")(
        classmethod(lambda cls, v: [clean_text(x) for x in v])
    )


class SearchRequest(Strict):
    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    prompt_id: str | None = Field(None, min_length=1, max_length=512)
    k: int = Field(20, ge=1, le=1000)
    min_score: float = Field(0.0, ge=0.0, le=1.0)
    filters: Filters = Field(default_factory=Filters)

    _clean = field_validator("text", "prompt_id")(classmethod(lambda cls, v: clean_text(v)))

    @model_validator(mode="after")
    def one_query(self) -> SearchRequest:
        if (self.text is None) == (self.prompt_id is None):
            raise ValueError("give exactly one of text or prompt_id")
        return self


class BatchRequest(Strict):
    queries: list[SearchRequest] = Field(min_length=1, max_length=256)


class PromptIn(Strict):
    id: str = Field(min_length=1, max_length=512)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    account_id: str = Field(min_length=1, max_length=512)
    timestamp: str | float
    metadata: dict[str, Any] = Field(default_factory=dict)

    _clean = field_validator("id", "text", "account_id")(classmethod(lambda cls, v: clean_text(v)))


class PromptsRequest(Strict):
    prompts: list[PromptIn] = Field(min_length=1, max_length=1000)


class HitOut(BaseModel):
    id: str
    account_id: str
    timestamp: str
    text: str
    score: float
    cosine: float
    jaccard: float | None
    template: float | None


class SummaryOut(BaseModel):
    threshold: float
    siblings: int
    accounts: int
    first_seen: str | None
    last_seen: str | None
    top_accounts: list[dict[str, Any]]


class ClusterRef(BaseModel):
    cluster_id: str
    flagged: bool
    campaign_score: float
    hits: int


class SearchResponse(BaseModel):
    results: list[HitOut]
    summary: SummaryOut
    clusters: list[ClusterRef]
    verdict: str = Field(description="'campaign' when a hit at or above the threshold is in a flagged cluster")


class BatchResponse(BaseModel):
    responses: list[SearchResponse]


class PromptResult(BaseModel):
    id: str
    status: str
    near_campaign: ClusterRef | None


class PromptsResponse(BaseModel):
    results: list[PromptResult]
    skipped: list[dict[str, Any]]


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    detail: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody

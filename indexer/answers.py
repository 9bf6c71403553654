"""The read side both edges answer from: search verdicts, stats, prompts, cluster pages, as typed records.

The CLI and the HTTP API call these same functions on an open index, so a search's verdict,
`promptsim stats` and `GET /v1/stats` cannot drift apart. Nothing here masks or audits: that
is the edge's one disclosure function (api/disclosure.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from search.engine import (  # Hit and Summary: typed records already (scores in [0, 1])
    PREVIEW_CHARS,
    Hit,
    SearchEngine,
    SearchFilters,
    SearchResult,
    Summary,
)
from search.errors import PromptNotFound
from search.index import PromptIndex
from search.manifest import STORE
from search.records import to_iso
from search.store import StoredPrompt

from .cluster_records import ClusterDetail, ClusterMember, ClusterRef, DayCount, JSONValue
from .cluster_store import clusters_of_ids, stored_cluster

CAMPAIGN = "campaign"
NONE = "none"


@dataclass(frozen=True)
class PromptRecord:
    """A stored prompt as served: raw text and metadata (the edge masks them for keys without raw)."""

    id: str
    text: str
    account_id: str
    timestamp: str
    metadata: Mapping[str, JSONValue]


@dataclass(frozen=True)
class FamilyRef:
    """The campaign family the query's wrapper matched (across rewordings and languages)."""

    cluster_id: str
    similarity: float  # cosine of the query's wrapper to the family's closest wording, in [0, 1]
    flagged: bool


@dataclass(frozen=True)
class SearchHit(Hit):
    """A hit as a search answers it: text is the whole prompt, or its first 200 characters
    with truncated true (ask for full texts to get them whole)."""

    truncated: bool = False


@dataclass(frozen=True)
class WatchRef:
    """The watch entry (a confirmed campaign family) a text matched: its id, how close, and the verdict."""

    watch_id: str
    similarity: float  # cosine of the text's wrapper or sentence to the family's closest form, in [0, 1]
    cluster_id: str  # the cluster the family was last seen as
    verdict_id: int
    confirmed_by: str
    confirmed_at: str
    note: str


@dataclass(frozen=True)
class SearchAnswer:
    """A search's hits and summary, the clusters the hits belong to, the family its wrapper
    matched, and the verdict.

    verdict is 'campaign' when a hit at or above the sibling threshold is in a flagged cluster,
    or the query's wrapper matches a flagged campaign family or a confirmed one (watch).
    """

    results: tuple[SearchHit, ...]
    summary: Summary
    clusters: tuple[ClusterRef, ...]
    verdict: str
    family: FamilyRef | None = None
    watch: WatchRef | None = None


@dataclass(frozen=True)
class QueryAnswer(SearchAnswer):
    """One answer of a batch: the search answer, and the query_id it answers."""

    query_id: str = ""


@dataclass(frozen=True)
class Issue:
    """One problem with a request: where (the field's path) and what."""

    loc: tuple[str, ...]
    msg: str


@dataclass(frozen=True)
class Problem:
    """The error shape's body: HTTP status, its code, one message, and the problems one by one."""

    status: int
    code: str
    message: str
    detail: tuple[Issue, ...] | None = None


@dataclass(frozen=True)
class QueryFailed:
    """A batch query that could not be answered (the others are): which one, and why."""

    query_id: str
    error: Problem


BatchItem = QueryAnswer | QueryFailed


@dataclass(frozen=True)
class IngestOutcome:
    """What became of one posted prompt, the flagged campaign it landed next to, and the confirmed
    family (watch entry) it belongs to, if any; verdict is 'campaign' when either is known."""

    id: str
    status: str  # "stored" or "unchanged"
    near_campaign: ClusterRef | None
    verdict: str = NONE
    watch: WatchRef | None = None


@dataclass(frozen=True)
class IndexStats:
    """What the store, FAISS and the LSHs hold, and the settings they were built with."""

    prompts: int
    vectors: int
    signatures: int
    accounts: int
    first_seen: str | None
    last_seen: str | None
    model: str
    backend: str
    dim: int
    num_perm: int
    lsh_threshold: float
    lsh_bands: tuple[int, ...]  # (bands, rows per band); a plain array in the spec, which every client reads
    vector_index: str
    format_version: int


def index_stats(index: PromptIndex) -> IndexStats:
    """Counts, time range and settings of an open index (`promptsim stats` and `GET /v1/stats`)."""
    counts = index.counts()
    store = index.store.stats()
    settings = index.manifest.settings
    return IndexStats(
        prompts=int(counts["prompts"]),
        vectors=int(counts["vectors"]),
        signatures=int(counts["signatures"]),
        accounts=int(counts["accounts"]),
        first_seen=None if store["first_seen"] is None else to_iso(store["first_seen"]),
        last_seen=None if store["last_seen"] is None else to_iso(store["last_seen"]),
        model=settings.model,
        backend=index.manifest.backend,
        dim=index.manifest.dim,
        num_perm=settings.num_perm,
        lsh_threshold=settings.lsh_threshold,
        lsh_bands=index.lsh.bands,
        vector_index=index.vectors.kind,
        format_version=index.manifest.format_version,
    )


def answer(
    index: PromptIndex, result: SearchResult, watch: WatchRef | None = None, *, full: bool = False
) -> SearchAnswer:
    """A search result with the clusters its hits are in, and the campaign verdict.

    watch: the confirmed family the query matched, if any. full: whole prompt texts in the hits;
    otherwise the engine's 200-character previews, each marked truncated when the prompt is longer.
    """
    owners = clusters_of_ids(index.path / STORE, [h.id for h in result.hits])
    hits: dict[str, int] = {}
    for hit in result.hits:
        if hit.id in owners:
            hits[owners[hit.id].cluster_id] = hits.get(owners[hit.id].cluster_id, 0) + 1
    refs = {ref.cluster_id: ref for ref in owners.values()}
    clusters = sorted(
        (ClusterRef(cid, refs[cid].flagged, refs[cid].campaign_score, n) for cid, n in hits.items()),
        key=lambda c: (-c.campaign_score, c.cluster_id),
    )
    threshold = result.summary.threshold
    campaign = any(h.id in owners and h.score >= threshold and owners[h.id].flagged for h in result.hits)
    family = None
    if result.family is not None:
        flagged = refs[result.family.cluster_id].flagged if result.family.cluster_id in refs else False
        family = FamilyRef(result.family.cluster_id, round(result.family.similarity, 4), flagged)
        campaign = campaign or flagged
    return SearchAnswer(
        results=shown_hits(index, result.hits, full=full),
        summary=result.summary,
        clusters=tuple(clusters),
        verdict=CAMPAIGN if campaign or watch is not None else NONE,
        family=family,
        watch=watch,
    )


def similar_all(
    engine: SearchEngine,
    texts: list[str | None],
    ids: list[str | None],
    k: int,
    min_score: float,
    filters: SearchFilters,
) -> list[SearchResult]:
    """One result per query: a text, or (its text None) a stored prompt's id; texts in one batch."""
    plain = [t for t in texts if t is not None]
    batch = iter(engine.similar_batch(plain, k, min_score=min_score, filters=filters) if plain else [])
    results = []
    for text, pid in zip(texts, ids):
        if text is not None:
            results.append(next(batch))
        else:
            results.append(engine.similar_to_id(str(pid), k, min_score=min_score, filters=filters))
    return results


def shown_hits(index: PromptIndex, hits: list[Hit], *, full: bool) -> tuple[SearchHit, ...]:
    """The hits with whole texts (full) or previews marked truncated when the prompt is longer."""
    cut = [h.id for h in hits if len(h.text) >= PREVIEW_CHARS]  # shorter previews are whole prompts
    stored = index.store.texts_by_id(cut, lengths_only=not full) if cut else {}
    shown = []
    names = [f.name for f in fields(Hit)]
    for hit in hits:
        values = {name: getattr(hit, name) for name in names}  # shallow: asdict's deep copy cost ~5% of a search
        if hit.id in stored:
            if full:
                values["text"] = stored[hit.id]
            else:
                values["truncated"] = stored[hit.id] > len(hit.text)
        shown.append(SearchHit(**values))
    return tuple(shown)


def near_campaign(index: PromptIndex, close_ids: Iterable[str]) -> ClusterRef | None:
    """The best-scoring flagged cluster among the clusters of close_ids, with how many of them are in it."""
    ids = sorted(set(close_ids))
    owners = clusters_of_ids(index.path / STORE, ids)
    flagged = [owners[i] for i in ids if i in owners and owners[i].flagged]
    best = max(flagged, key=lambda c: c.campaign_score, default=None)
    if best is None:
        return None
    hits = sum(owners[i].cluster_id == best.cluster_id for i in ids if i in owners)
    return ClusterRef(best.cluster_id, best.flagged, best.campaign_score, hits)


def prompt_record(index: PromptIndex, prompt_id: str) -> PromptRecord:
    """One stored prompt, or PromptNotFound."""
    row = index.store.row_of(prompt_id)
    if row is None:
        raise PromptNotFound(f"no stored prompt with id {prompt_id!r}")
    rec = index.store.fetch([row])[row]
    return PromptRecord(rec.id, rec.text, rec.account_id, to_iso(rec.timestamp), rec.metadata)


def cluster_detail(index: PromptIndex, cluster_id: str, *, offset: int, limit: int) -> ClusterDetail | None:
    """A current cluster, its timeline and one page of members; None if there is no such cluster."""
    found = stored_cluster(index.path / STORE, cluster_id)
    if found is None:
        return None
    rows = found.rows.tolist()
    records = index.store.fetch(rows)
    days: dict[str, int] = {}
    for rec in records.values():
        day = to_iso(rec.timestamp)[:10]
        days[day] = days.get(day, 0) + 1
    page = [_member(records[r]) for r in rows[offset : offset + limit] if r in records]
    return ClusterDetail(
        cluster=found.cluster,
        members=tuple(page),
        timeline=tuple(DayCount(d, n) for d, n in sorted(days.items())),
        next_offset=offset + limit if offset + limit < len(rows) else None,
    )


def account_prompts(index: PromptIndex, account_id: str, *, limit: int) -> tuple[ClusterMember, ...]:
    """An account's newest prompts."""
    rows = index.store.rows_matching(account_ids=[account_id])
    records = index.store.fetch(rows.tolist())
    newest = sorted(records.values(), key=lambda r: -r.timestamp)[:limit]
    return tuple(_member(r) for r in newest)


def _member(rec: StoredPrompt) -> ClusterMember:
    return ClusterMember(rec.id, rec.account_id, to_iso(rec.timestamp), rec.text)

"""SearchEngine: top-k siblings of a prompt, fusing embedding cosine and MinHash Jaccard.

Fusion. Each candidate comes from FAISS (nearest embeddings), the whole-prompt LSH and/or
the window LSH (prompts whose first or last 16 words match the query's: a shared wrapper).
Its `cosine` is the inner product of unit vectors clipped to [0, 1]; its `jaccard` is the
whole-prompt MinHash estimate and its `template` the best of head-vs-head and tail-vs-tail
window estimates, each present only for candidates of that LSH (null otherwise: the estimate
of a non-candidate is noise around a small value). The fused `score` is
max(cosine, jaccard, template): a prompt is a sibling when any signal says so — Jaccard
catches obfuscated and lightly edited copies, cosine paraphrase, template a shared wrapper
around different slot content. Ties are broken by Jaccard, then cosine, so an exact copy
ranks above a prompt that only shares its wrapper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import PromptNotFound
from .index import PromptIndex
from .minhash import estimate_jaccard
from .records import to_iso
from .signals import Signals
from .vectors import faiss_threads

PREVIEW_CHARS = 200
Scores = tuple[float, float, float | None, float | None]  # score, cosine, jaccard, template
# LSH candidates beyond this many (a huge campaign) are subsampled before verification;
# the summary still counts every cosine sibling through a FAISS range search.
MAX_LEXICAL_CANDIDATES = 20_000


@dataclass(frozen=True)
class SearchFilters:
    """Restrict hits to some accounts and a time range (epoch seconds, until exclusive)."""

    account_ids: tuple[str, ...] = ()
    exclude_account_ids: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None

    def __bool__(self) -> bool:
        return bool(self.account_ids or self.exclude_account_ids or self.since is not None or self.until is not None)


@dataclass(frozen=True)
class Hit:
    """One sibling: who sent it, when, and how similar it is (all scores in [0, 1])."""

    id: str
    account_id: str
    timestamp: str
    text: str
    score: float
    cosine: float
    jaccard: float | None
    template: float | None = None


@dataclass(frozen=True)
class Summary:
    """The siblings at or above the threshold: how many, from how many accounts, when."""

    threshold: float
    siblings: int
    accounts: int
    first_seen: str | None
    last_seen: str | None
    top_accounts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    summary: Summary

    def to_json(self) -> dict[str, Any]:
        return {"results": [asdict(h) for h in self.hits], "summary": asdict(self.summary)}


class SearchEngine:
    """Query-time view of a PromptIndex."""

    def __init__(self, index: PromptIndex, *, sibling_threshold: float = 0.8, fetch: int = 100):
        if not 0.0 <= sibling_threshold <= 1.0:
            raise ValueError(f"sibling threshold {sibling_threshold} must be within [0, 1]")
        self.index = index
        self.sibling_threshold = sibling_threshold
        self.fetch = fetch
        self._scale = index.cosine_scale  # scores and thresholds are on MiniLM's cosine scale

    def similar(
        self, text: str, k: int = 20, *, min_score: float = 0.0, filters: SearchFilters = SearchFilters()
    ) -> SearchResult:
        """Top-k stored siblings of text."""
        with faiss_threads(1):  # one query: a single thread is faster than two here
            return self.similar_batch([text], k, min_score=min_score, filters=filters)[0]

    def similar_to_id(
        self, prompt_id: str, k: int = 20, *, min_score: float = 0.0, filters: SearchFilters = SearchFilters()
    ) -> SearchResult:
        """Top-k siblings of a stored prompt, itself excluded."""
        row = self.index.store.row_of(prompt_id)
        if row is None:
            raise PromptNotFound(f"no stored prompt with id {prompt_id!r}")
        text = self.index.store.fetch([row])[row].text
        with faiss_threads(1):
            return self._search([text], k, min_score, filters, exclude_row=row)[0]

    def similar_batch(
        self, texts: Sequence[str], k: int = 20, *, min_score: float = 0.0, filters: SearchFilters = SearchFilters()
    ) -> list[SearchResult]:
        """Top-k siblings of each text, embedding and FAISS search done in one batch."""
        return self._search(list(texts), k, min_score, filters)

    def similar_signals(
        self, queries: Signals, k: int = 20, *, min_score: float = 0.0, filters: SearchFilters = SearchFilters()
    ) -> list[SearchResult]:
        """Top-k siblings of prompts whose signals are already computed (e.g. just ingested)."""
        return self._search_signals(queries, k, min_score, filters)

    def _search(
        self, texts: list[str], k: int, min_score: float, filters: SearchFilters, exclude_row: int | None = None
    ) -> list[SearchResult]:
        return self._search_signals(self.index.signals(texts), k, min_score, filters, exclude_row)

    def _search_signals(
        self, queries: Signals, k: int, min_score: float, filters: SearchFilters, exclude_row: int | None = None
    ) -> list[SearchResult]:
        if k < 1:
            raise ValueError(f"k={k} must be at least 1")
        allowed = self.index.store.rows_matching(**_filter_args(filters)) if filters else None
        neighbours = self.index.vectors.search(queries.vectors, max(k, self.fetch) + 1, allowed=allowed)
        radius_hits = self._cosine_siblings(queries.vectors, allowed)
        results = []
        for i in range(len(queries)):
            candidates = self._score(queries.take([i]), neighbours.ids[i], neighbours.scores[i], allowed)
            candidates.pop(exclude_row, None)
            ranked = sorted(candidates.items(), key=_rank_key)
            ranked = [(row, s) for row, s in ranked if s[0] >= min_score][:k]
            siblings = {row for row, s in candidates.items() if s[0] >= self.sibling_threshold}
            siblings |= set(radius_hits[i].tolist()) - {exclude_row}
            results.append(SearchResult(self._hits(ranked), self._summary(siblings)))
        return results

    def _score(
        self, query: Signals, ids: np.ndarray, cosines: np.ndarray, allowed: np.ndarray | None
    ) -> dict[int, Scores]:
        """row -> (score, cosine, jaccard, template) for the FAISS and LSH candidates of one query."""
        scored: dict[int, Scores] = {}
        for row, cos in zip(ids.tolist(), self._scale.to_common(cosines).tolist()):
            if row >= 0:
                c = _unit(cos)
                scored[row] = (c, c, None, None)
        lexical = self.index.duplicates.candidates(query.signatures[0])
        windowed = self.index.windows.window_candidates(query.windows[0]) if query.has_windows[0] else lexical[:0]
        pool = np.union1d(lexical, windowed)
        if allowed is not None:
            pool = np.intersect1d(pool, allowed)
        if len(pool) > MAX_LEXICAL_CANDIDATES:
            pool = np.random.default_rng(0).choice(pool, MAX_LEXICAL_CANDIDATES, replace=False)
        if not len(pool):
            return scored
        rows, stored = self._candidate_signals(pool)
        cos = np.clip(self._scale.to_common(stored.vectors @ query.vectors[0]), 0.0, 1.0)
        jac = np.where(np.isin(rows, lexical), estimate_jaccard(query.signatures[0], stored.signatures), np.nan)
        head = estimate_jaccard(query.windows[0, 0], stored.windows[:, 0])
        tail = estimate_jaccard(query.windows[0, 1], stored.windows[:, 1])
        tmpl = np.where(np.isin(rows, windowed) & stored.has_windows, np.maximum(head, tail), np.nan)
        for row, c, j, t in zip(rows.tolist(), cos.tolist(), jac.tolist(), tmpl.tolist()):
            j_or_none = None if np.isnan(j) else j
            t_or_none = None if np.isnan(t) else t
            scored[row] = (max(c, j_or_none or 0.0, t_or_none or 0.0), c, j_or_none, t_or_none)
        return scored

    def _candidate_signals(self, pool: np.ndarray) -> tuple[np.ndarray, Signals]:
        """Signatures from the in-memory table and vectors from FAISS: no SQLite read per candidate."""
        rows, signatures = self.index.signatures.lookup(pool)
        vectors = self.index.vectors.vectors_of(rows)
        return rows, Signals(vectors, signatures[:, 0], signatures[:, 1:])

    def _cosine_siblings(self, vectors: np.ndarray, allowed: np.ndarray | None) -> list[np.ndarray]:
        """Every stored row with cosine >= the sibling threshold, per query (FAISS range search)."""
        if not len(self.index.vectors):
            return [np.zeros(0, np.int64) for _ in range(len(vectors))]
        lims, _, ids = self.index.vectors.range_search(vectors, self._scale.to_raw(self.sibling_threshold))
        found = [ids[lims[i] : lims[i + 1]] for i in range(len(vectors))]
        if allowed is not None:
            found = [np.intersect1d(f, allowed) for f in found]
        return found

    def _hits(self, ranked: list[tuple[int, Scores]]) -> list[Hit]:
        records = self.index.store.fetch([row for row, _ in ranked])
        hits = []
        for row, (score, cos, jac, tmpl) in ranked:
            rec = records.get(row)
            if rec is None:  # deleted between search and fetch
                continue
            hits.append(
                Hit(
                    id=rec.id,
                    account_id=rec.account_id,
                    timestamp=to_iso(rec.timestamp),
                    text=rec.text[:PREVIEW_CHARS],
                    score=round(score, 4),
                    cosine=round(cos, 4),
                    jaccard=None if jac is None else round(jac, 4),
                    template=None if tmpl is None else round(tmpl, 4),
                )
            )
        return hits

    def _summary(self, siblings: set[int]) -> Summary:
        agg = self.index.store.aggregate(sorted(siblings))
        return Summary(
            threshold=self.sibling_threshold,
            siblings=agg["prompts"],
            accounts=agg["accounts"],
            first_seen=None if agg["first_seen"] is None else to_iso(agg["first_seen"]),
            last_seen=None if agg["last_seen"] is None else to_iso(agg["last_seen"]),
            top_accounts=agg["top_accounts"],
        )


def _rank_key(item: tuple[int, Scores]) -> tuple[float, float, float, int]:
    """Best score first; ties (a template match also scores 1.0) go to the closer whole prompt."""
    row, (score, cosine, jaccard, _) = item
    return (-score, -(jaccard or 0.0), -cosine, row)


def _unit(value: float) -> float:
    """Clip an inner product to [0, 1]; opposite directions are simply not similar."""
    return float(min(max(value, 0.0), 1.0))


def _filter_args(filters: SearchFilters) -> dict[str, Any]:
    return {
        "account_ids": filters.account_ids,
        "exclude_account_ids": filters.exclude_account_ids,
        "since": filters.since,
        "until": filters.until,
    }


__all__ = ["Hit", "SearchEngine", "SearchFilters", "SearchResult", "Summary"]

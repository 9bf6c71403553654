"""The watchlist: confirmed families, recognised in new prompts at ingest and in searches, before any dedup run.

Each confirmed family keeps the form embeddings of its wrapper (multilingual, so rewordings and
translations match) and its own threshold (indexer/verdicts.py: watch_threshold). A text is
compared piece by piece (its wrapper, its sentences) with every entry's forms; the closest entry
it reaches the threshold of is its watch entry. The family encoder loads once per worker, on
the first text compared while entries exist; entries reload when a verdict is added.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.embedding import Encoder
from search.family_index import best_similarity
from search.records import Prompt
from search.wrappers import Vocabulary

from .answers import WatchRef
from .triage_store import EMPTY_VOCABULARY, JudgedFamily, TriageStore, WatchAccount
from .verdicts import CONFIRMED


@dataclass(frozen=True)
class WatchEntry:
    """A confirmed family on the watchlist: its verdict, what it was when confirmed, what has come since."""

    watch_id: str
    cluster_id: str  # the cluster it was last seen as
    verdict_id: int
    confirmed_by: str
    confirmed_at: str
    note: str
    forms: int  # wrapper wordings it is recognised by
    threshold: float  # cosine a text's wrapper or sentence needs to match it
    prompts_at_verdict: int
    accounts_at_verdict: int
    new_accounts: int  # accounts first seen in it since (GET /v1/watchlist/{id}/accounts)


class Watchlist:
    """One worker's view of the confirmed families of an index directory (thread-safe)."""

    def __init__(self, index_dir: Path, encoder: Encoder | None = None):
        self._dir = index_dir
        self._store = TriageStore(index_dir)
        self._encoder = encoder
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: list[JudgedFamily] = []
        self._forms = np.zeros((0, 0), np.float32)
        self._owner = np.zeros(0, np.int64)
        self._vocabulary = EMPTY_VOCABULARY

    def close(self) -> None:
        self._store.close()

    def entries(self) -> list[JudgedFamily]:
        """The confirmed families now (reloaded if a verdict was added since)."""
        with self._lock:
            self._refresh()
            return list(self._entries)

    def listed(self) -> list[WatchEntry]:
        """The watch entries as served (every confirmed family, with or without wrapper forms)."""
        with self._lock:
            confirmed = self._store.families(status=CONFIRMED)
            new = self._store.new_account_counts()
        return [
            WatchEntry(
                f.family_id,
                f.baseline.cluster_id,
                f.verdict.verdict_id,
                f.verdict.by,
                f.verdict.at,
                f.verdict.note,
                len(f.baseline.forms),
                f.baseline.threshold,
                f.baseline.size,
                len(f.baseline.accounts),
                new.get(f.family_id, 0),
            )
            for f in confirmed
        ]

    def accounts(self, watch_id: str, *, since: float | None) -> list[WatchAccount] | None:
        """Accounts first seen in a watched family at or after since; None if it is no watch entry."""
        with self._lock:
            family = self._store.family(watch_id)
            if family is None or family.verdict.verdict != CONFIRMED:
                return None
            return self._store.watch_accounts(watch_id, since=since)

    def encoder(self) -> Encoder:
        """The family encoder this worker uses (its model loads on first use)."""
        with self._lock:
            if self._encoder is None:
                from search.family_encoder import shared_family_encoder

                self._encoder = shared_family_encoder()
            return self._encoder

    def match(self, texts: Sequence[str]) -> list[WatchRef | None]:
        """The watch entry each text belongs to, or None."""
        with self._lock:
            self._refresh()
            if not len(self._forms) or not texts:
                return [None] * len(texts)
            if self._encoder is None:
                from search.family_encoder import shared_family_encoder

                self._encoder = shared_family_encoder(self._entries[0].baseline.model)
            best = best_similarity(list(texts), self._vocabulary, self._forms, self._encoder)
            entries, owner = self._entries, self._owner
        per_entry = np.full((len(texts), len(entries)), -1.0, np.float32)
        np.maximum.at(per_entry.T, owner, best.T)  # each entry's closest form, per text
        thresholds = np.asarray([e.baseline.threshold for e in entries], np.float32)
        out: list[WatchRef | None] = []
        for row in per_entry:
            above = np.flatnonzero(row >= thresholds)
            if not len(above):
                out.append(None)
                continue
            chosen = int(above[np.argmax(row[above])])
            out.append(watch_ref(entries[chosen], min(float(row[chosen]), 1.0)))
        return out

    def of_cluster(self, cluster_id: str) -> WatchRef | None:
        """The watch entry whose family was last seen as this cluster (a prompt landed next to it)."""
        found = next((e for e in self.entries() if e.baseline.cluster_id == cluster_id), None)
        return None if found is None else watch_ref(found, 1.0)

    def record(self, prompts: Sequence[Prompt], refs: Sequence[WatchRef | None], *, queue_alerts: bool) -> None:
        """Note the accounts newly seen in watched families and, when alerts are on, queue the hits."""
        hits = [(r.watch_id, p.id, p.account_id, r.similarity) for p, r in zip(prompts, refs) if r is not None]
        if not hits:
            return
        with self._lock:
            known = {e.family_id: e.baseline.accounts for e in self._entries}
            fresh: dict[str, dict[str, float]] = {}
            for family_id, _, account_id, _ in hits:
                if account_id not in known.get(family_id, frozenset()):
                    fresh.setdefault(family_id, {})[account_id] = time.time()
            for family_id, accounts in fresh.items():
                self._store.seen_accounts(family_id, accounts, "ingest")
            if queue_alerts:
                self._store.add_hits(hits)

    def _refresh(self) -> None:
        stamp = self._store.version()
        if stamp == self._stamp:
            return
        self._entries = [e for e in self._store.families(status=CONFIRMED) if len(e.baseline.forms)]
        forms = [e.baseline.forms for e in self._entries]
        self._forms = np.concatenate(forms).astype(np.float32) if forms else np.zeros((0, 0), np.float32)
        self._owner = (
            np.concatenate([np.full(len(f), n, np.int64) for n, f in enumerate(forms)]) if forms else self._owner[:0]
        )
        self._vocabulary = merged([e.baseline.vocabulary for e in self._entries])
        self._stamp = stamp


def merged(vocabularies: list[Vocabulary]) -> Vocabulary:
    """One vocabulary of the watch entries' own (a shingle in several keeps its highest support)."""
    if not vocabularies:
        return EMPTY_VOCABULARY
    hashes = np.concatenate([v.hashes for v in vocabularies])
    order = np.lexsort((-np.concatenate([v.support for v in vocabularies]), hashes))
    first = np.concatenate(([True], hashes[order][1:] != hashes[order][:-1])) if len(order) else order.astype(bool)
    keep = order[first]
    support = np.concatenate([v.support for v in vocabularies])[keep]
    accounts = np.concatenate([v.accounts for v in vocabularies])[keep]
    return Vocabulary(hashes[keep], support, accounts, max(v.groups for v in vocabularies))


def watch_ref(entry: JudgedFamily, similarity: float) -> WatchRef:
    v = entry.verdict
    return WatchRef(entry.family_id, round(similarity, 4), entry.baseline.cluster_id, v.verdict_id, v.by, v.at, v.note)

"""IndexService: one worker's view of an index directory, safe for concurrent requests.

Reads and writes of the in-memory structures happen under one lock, and only briefly:
embedding (the slow part) is done before taking it. Before each request the worker
replays what other processes (other workers, a CLI ingest, a nightly purge) committed to
the store, so several workers serving one directory stay consistent, and a reader sees the
index either before or after a write batch, never half of it.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from indexer.cluster_store import ClusterStore, clusters_of_ids
from indexer.ingest import IngestReport, ingest_batch
from search.embedding import Encoder
from search.engine import SearchEngine, SearchFilters, SearchResult
from search.errors import PromptNotFound
from search.index import PromptIndex
from search.manifest import KEYS, STORE
from search.records import Prompt, to_iso


class IndexService:
    """Search, ingest and cluster reads over one PromptIndex."""

    def __init__(self, index_dir: Path, encoder: Encoder, *, write_timeout: float = 30.0):
        self.index = PromptIndex.open(index_dir, encoder)
        self.engine = SearchEngine(self.index)
        self._lock = threading.RLock()
        self._write_timeout = write_timeout

    def close(self) -> None:
        self.index.close()

    def search(
        self, texts: list[str | None], ids: list[str | None], k: int, min_score: float, filters: SearchFilters
    ) -> list[dict[str, Any]]:
        """One response body per query (text or stored prompt id), with the clusters of the hits."""
        with self._lock:
            self.index.refresh()
            results: list[SearchResult] = []
            plain = [t for t in texts if t is not None]
            batch = iter(self.engine.similar_batch(plain, k, min_score=min_score, filters=filters) if plain else [])
            for text, pid in zip(texts, ids):
                if text is not None:
                    results.append(next(batch))
                else:
                    results.append(self.engine.similar_to_id(str(pid), k, min_score=min_score, filters=filters))
        return [self._with_clusters(r) for r in results]

    def _with_clusters(self, result: SearchResult) -> dict[str, Any]:
        body = result.to_json()
        owners = clusters_of_ids(self.index.path / STORE, [h.id for h in result.hits])
        counts: dict[str, dict[str, Any]] = {}
        for hit in result.hits:
            owner = owners.get(hit.id)
            if owner:
                entry = counts.setdefault(owner["cluster_id"], {**owner, "hits": 0})
                entry["hits"] += 1
        body["clusters"] = sorted(counts.values(), key=lambda c: (-c["campaign_score"], c["cluster_id"]))
        sibling_clusters = {
            owners[h.id]["cluster_id"]
            for h in result.hits
            if h.id in owners and h.score >= result.summary.threshold and owners[h.id]["flagged"]
        }
        body["verdict"] = "campaign" if sibling_clusters else "none"
        return body

    def ingest(self, prompts: list[Prompt]) -> list[dict[str, Any]]:
        """Upsert a batch (acknowledged when this returns) and say which prompts sit next to a campaign."""
        report = IngestReport()
        signals = self.index.signals([p.text for p in prompts])  # embed outside every lock
        with self._lock, self.index.writing(self._write_timeout):
            before = self.index.store.digests([p.id for p in prompts])
            ingest_batch(self.index, prompts, report, signals=signals)
            after = self.index.store.digests([p.id for p in prompts])
        statuses = {p.id: "unchanged" if before.get(p.id) == after.get(p.id) else "stored" for p in prompts}
        with self._lock:  # the signals are the ones just stored: nothing is embedded twice
            near = [r.to_json() for r in self.engine.similar_signals(signals, 10)]
        close = [
            {h["id"] for h in body["results"] if h["id"] != p.id and h["score"] >= 0.8}
            for p, body in zip(prompts, near)
        ]
        owners = clusters_of_ids(self.index.path / STORE, sorted(set().union(*close)))
        out = []
        for prompt, ids in zip(prompts, close):
            flagged = [owners[i] for i in sorted(ids) if i in owners and owners[i]["flagged"]]
            best = max(flagged, key=lambda c: c["campaign_score"], default=None)
            hit = (
                None
                if best is None
                else {**best, "hits": sum(owners[i]["cluster_id"] == best["cluster_id"] for i in ids if i in owners)}
            )
            out.append({"id": prompt.id, "status": statuses[prompt.id], "near_campaign": hit})
        return out

    def restore(self, snapshot: Path) -> dict[str, Any]:
        """Restore the index directory from a snapshot file (keeping the API keys) and reload."""
        from indexer.snapshots import restore_snapshot

        with self._lock:
            description = restore_snapshot(
                snapshot, self.index.path, force=True, keep=(KEYS,), lock_timeout=self._write_timeout
            )
            self.index.refresh()  # sees the new store file and reloads every structure
            report = self.index.verify()
        return {
            "restored": snapshot.name,
            "snapshot_created_at": description["created_at"],
            "prompts": report["store"],
            "consistent": report["consistent"],
        }

    def get_prompt(self, prompt_id: str) -> dict[str, Any]:
        with self._lock:
            self.index.refresh()
            row = self.index.store.row_of(prompt_id)
            if row is None:
                raise PromptNotFound(f"no stored prompt with id {prompt_id!r}")
            rec = self.index.store.fetch([row])[row]
        return {
            "id": rec.id,
            "text": rec.text,
            "account_id": rec.account_id,
            "timestamp": to_iso(rec.timestamp),
            "metadata": rec.metadata,
        }

    def delete(self, *, prompt_id: str | None = None, account_id: str | None = None) -> int:
        with self._lock, self.index.writing(self._write_timeout):
            if prompt_id is not None:
                return self.index.delete_ids([prompt_id])
            return self.index.delete_account(str(account_id))

    def checkpoint(self) -> None:
        """Save snapshots so a restart replays little (called at shutdown and after large writes)."""
        with self._lock, self.index.writing(self._write_timeout):
            self.index.checkpoint()

    def clusters(self, **filters: Any) -> list[dict[str, Any]]:
        store = ClusterStore(self.index.path / STORE)
        try:
            return store.page(**filters)
        finally:
            store.close()

    def cluster(self, cluster_id: str, *, offset: int, limit: int) -> dict[str, Any] | None:
        store = ClusterStore(self.index.path / STORE)
        try:
            body = store.get(cluster_id)
        finally:
            store.close()
        if body is None:
            return None
        rows = body.pop("rows")
        with self._lock:
            records = self.index.store.fetch(rows)
        days: dict[str, int] = {}
        for rec in records.values():
            day = to_iso(rec.timestamp)[:10]
            days[day] = days.get(day, 0) + 1
        page = [records[r] for r in rows[offset : offset + limit] if r in records]
        body["timeline"] = [{"day": d, "prompts": n} for d, n in sorted(days.items())]
        body["members"] = [
            {"id": r.id, "account_id": r.account_id, "timestamp": to_iso(r.timestamp), "text": r.text} for r in page
        ]
        body["next_offset"] = offset + limit if offset + limit < len(rows) else None
        return body

    def account_prompts(self, account_id: str, *, limit: int) -> list[dict[str, Any]]:
        """An account's newest prompts."""
        with self._lock:
            self.index.refresh()
            rows = self.index.store.rows_matching(account_ids=[account_id])
            records = self.index.store.fetch(rows.tolist())
        newest = sorted(records.values(), key=lambda r: -r.timestamp)[:limit]
        return [
            {"id": r.id, "account_id": r.account_id, "timestamp": to_iso(r.timestamp), "text": r.text} for r in newest
        ]

    def account_total(self, account_id: str) -> int:
        return self.index.store.prompts_per_account([account_id]).get(account_id, 0)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self.index.refresh()
            counts = self.index.counts()
            store = self.index.store.stats()
        settings = asdict(self.index.manifest.settings)
        return {
            **counts,
            "first_seen": store["first_seen"] and to_iso(store["first_seen"]),
            "last_seen": store["last_seen"] and to_iso(store["last_seen"]),
            "model": settings["model"],
            "num_perm": settings["num_perm"],
            "vector_index": self.index.vectors.kind,
        }

"""IndexService: one server worker's view of an index directory, safe for concurrent requests.

The in-memory structures sit behind a readers-writer lock (indexer/rwlock.py): searches
share it, so one worker's searches overlap where FAISS and numpy release the GIL, and a
write holds it alone, only briefly: embedding (the slow part) is done before taking it.
Before each request the worker replays what other processes (other workers, a CLI ingest,
a nightly purge) committed to the store, holding the lock alone while it does, so several
workers serving one directory stay consistent, and a reader sees the index either before
or after a write batch, never half of it.

Lock order, writers: this worker's write mutex, then the directory's write lock (waiting at
most write_wait seconds: while another process writes, the request fails fast with
IndexLocked), and only then, briefly, the structures' lock. A writer waiting on another
process never holds the lock readers need.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from search.embedding import Encoder
from search.engine import SearchEngine, SearchFilters
from search.index import PromptIndex, write_lock
from search.records import Prompt
from search.store import PromptStore
from search.vectors import faiss_threads

from . import answers, verdicts
from .answers import IndexStats, IngestOutcome, PromptRecord, SearchAnswer
from .cluster_records import Cluster, ClusterDetail, ClusterMember
from .cluster_store import ClusterStore
from .erasure import erase_account, erase_ids
from .ingest import IngestReport, ingest_batch
from .rwlock import ReadWriteLock
from .snapshots import restore_snapshot
from .triage_store import TriageStore, VerdictRecord
from .watchlist import Watchlist

STORE_NAME = "prompts.sqlite"
NEAR = 0.8  # a new prompt this close to a member of a flagged cluster landed next to that campaign
_HANDOVER = 0.05  # seconds: the lock was just seen free; another process taking it meanwhile is refused


class IndexService:
    """Search, ingest, deletes and cluster reads over one PromptIndex."""

    def __init__(
        self,
        index_dir: Path | PromptIndex,
        encoder: Encoder | None = None,
        *,
        write_wait: float = 1.0,
        watch_alerts: bool = False,
    ):
        """Open the index at index_dir with encoder, or serve an index already open (the library, the CLI)."""
        self.index = index_dir if isinstance(index_dir, PromptIndex) else PromptIndex.open(index_dir, encoder)
        self.index.signatures  # noqa: B018  # read now, while the server is not yet ready, not in the first search
        self.engine = SearchEngine(self.index)
        self.watchlist = Watchlist(self.index.path)
        self.watch_alerts = watch_alerts  # queue watchlist hits for the alert worker (api/webhook.py)
        self._lock = ReadWriteLock()  # the in-memory structures
        self._write_mutex = threading.Lock()  # one writer per worker at a time
        self._write_wait = write_wait

    def close(self) -> None:
        self.index.close()
        self.watchlist.close()

    def search(
        self,
        texts: list[str | None],
        ids: list[str | None],
        k: int,
        min_score: float,
        filters: SearchFilters,
        full: bool = False,
    ) -> list[SearchAnswer]:
        """One answer per query (text or stored prompt id), with the clusters of the hits and the verdict."""
        with self._reading(), faiss_threads(1):  # the server's parallelism is its request threads
            results = answers.similar_all(self.engine, texts, ids, k, min_score, filters)
        plain = [t for t in texts if t is not None]
        watched = iter(self.watchlist.match(plain))
        return [
            answers.answer(self.index, r, next(watched) if t is not None else None, full=full)
            for r, t in zip(results, texts)
        ]

    def ingest(self, prompts: list[Prompt]) -> list[IngestOutcome]:
        """Upsert a batch (acknowledged when this returns) and say which prompts sit next to a campaign."""
        report = IngestReport()
        signals = self.index.signals([p.text for p in prompts])  # embed outside every lock
        watched = self.watchlist.match([p.text for p in prompts])
        with self._writing():
            before = self.index.store.digests([p.id for p in prompts])
            ingest_batch(self.index, prompts, report, signals=signals)
            after = self.index.store.digests([p.id for p in prompts])
        with self._lock.shared():  # the signals are the ones just stored: nothing is embedded twice
            near = self.engine.similar_signals(signals, 10)
        out = []
        for prompt, result, watch in zip(prompts, near, watched):
            close = [h.id for h in result.hits if h.id != prompt.id and h.score >= NEAR]
            status = "unchanged" if before.get(prompt.id) == after.get(prompt.id) else "stored"
            campaign = answers.near_campaign(self.index, close)
            if watch is None and campaign is not None:
                watch = self.watchlist.of_cluster(campaign.cluster_id)
            verdict = answers.CAMPAIGN if campaign is not None or watch is not None else answers.NONE
            out.append(IngestOutcome(prompt.id, status, campaign, verdict, watch))
        stored = [(p, o.watch) for p, o in zip(prompts, out) if o.status == "stored"]  # a repost is no new hit
        self.watchlist.record([p for p, _ in stored], [w for _, w in stored], queue_alerts=self.watch_alerts)
        return out

    def delete(self, *, prompt_id: str | None = None, account_id: str | None = None) -> int:
        """Erase one prompt or an account's prompts from every structure (logged: restores keep them erased)."""
        with self._writing():
            if prompt_id is not None:
                return erase_ids(self.index, [prompt_id])
            return erase_account(self.index, str(account_id))

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Hold the structures' lock with other readers, caught up with other processes' writes first."""
        if self.index.behind():
            with self._lock.exclusive():
                self.index.refresh()
        with self._lock.shared():  # a write that lands between the two is seen by the next request
            yield

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the directory's write lock and the structures' lock alone; IndexLocked at once while another
        process writes."""
        with self._write_mutex:
            with write_lock(self.index.path, self._write_wait):  # wait here, holding nothing readers need
                pass
            with self._lock.exclusive(), self.index.writing(_HANDOVER):
                yield

    def restore(self, snapshot: Path) -> dict[str, object]:
        """Restore the index directory from a snapshot file (index data only) and reload."""
        with self._write_mutex, self._lock.exclusive():
            description = restore_snapshot(snapshot, self.index.path, force=True, lock_timeout=self._write_wait)
            self.index.refresh()  # sees the new store file and reloads every structure
            report = self.index.verify()
        return {
            "restored": snapshot.name,
            "snapshot_created_at": description["created_at"],
            "prompts": report["store"],
            "consistent": report["consistent"],
        }

    def prompt(self, prompt_id: str) -> PromptRecord:
        with self._reading():
            return answers.prompt_record(self.index, prompt_id)

    def stats(self) -> IndexStats:
        with self._reading():
            return answers.index_stats(self.index)

    def clusters(
        self, *, flagged: bool | None, min_accounts: int, since: str | None, after: str | None, limit: int
    ) -> list[Cluster]:
        store = ClusterStore(self.index.path / STORE_NAME)
        try:
            return store.page(flagged=flagged, min_accounts=min_accounts, since=since, after=after, limit=limit)
        finally:
            store.close()

    def cluster(self, cluster_id: str, *, offset: int, limit: int) -> ClusterDetail | None:
        with self._reading():
            return answers.cluster_detail(self.index, cluster_id, offset=offset, limit=limit)

    def account_prompts(self, account_id: str, *, limit: int) -> tuple[ClusterMember, ...]:
        with self._reading():
            return answers.account_prompts(self.index, account_id, limit=limit)

    def account_total(self, account_id: str) -> int:
        with self._lock.shared():
            return self.index.store.prompts_per_account([account_id]).get(account_id, 0)

    def record_verdict(
        self, cluster_id: str, verdict: str, note: str, *, by_key: str, by_name: str
    ) -> VerdictRecord | None:
        """Record an analyst's verdict on a current cluster's family; None if there is no such cluster.

        On a read-only store connection of its own: confirming takes seconds (the watchlist threshold),
        and no search waits on it."""
        store = PromptStore(self.index.path / STORE_NAME, readonly=True)
        try:
            with TriageStore(self.index.path) as triage:
                return verdicts.record_verdict(
                    self.index.path,
                    store,
                    triage,
                    cluster_id,
                    verdict,
                    note,
                    by_key=by_key,
                    by_name=by_name,
                    encoder=self.watchlist.encoder(),
                )
        finally:
            store.close()

    def verdicts(
        self, *, family_id: str | None, at_most: int | None, limit: int, cluster_id: str | None = None
    ) -> list[VerdictRecord]:
        with TriageStore(self.index.path) as triage:
            return triage.verdicts(family_id=family_id, cluster_id=cluster_id, at_most=at_most, limit=limit)

    def owners(self, prompt_ids: list[str]) -> dict[str, str]:
        """prompt id -> id of the current cluster it is in."""
        from .cluster_store import clusters_of_ids

        return {pid: ref.cluster_id for pid, ref in clusters_of_ids(self.index.path / STORE_NAME, prompt_ids).items()}

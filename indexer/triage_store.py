"""DIR/triage.sqlite: analysts' verdicts, the families they judged, the watchlist's hits, the alert outbox.

Its own file (mode 600) so that ingest's few writes here never wait on the prompt store's writer.
Arrays (form embeddings, MinHash signatures) are raw little-endian bytes with their shape
beside them: nothing stored can run code when read.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.records import to_iso
from search.wrappers import Vocabulary

from .private_files import touch_private

TRIAGE_DB = "triage.sqlite"
EMPTY_VOCABULARY = Vocabulary(np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    verdict_id INTEGER PRIMARY KEY AUTOINCREMENT,
    family_id  TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    verdict    TEXT NOT NULL,
    note       TEXT NOT NULL,
    by_key     TEXT NOT NULL,
    by_name    TEXT NOT NULL,
    at         REAL NOT NULL,
    size       INTEGER NOT NULL,
    accounts   INTEGER NOT NULL
);
-- One row per judged family: its latest verdict and the baseline that verdict judged.
CREATE TABLE IF NOT EXISTS families (
    family_id    TEXT PRIMARY KEY,
    verdict_id   INTEGER NOT NULL,
    cluster_id   TEXT NOT NULL,
    model        TEXT NOT NULL,
    forms        BLOB NOT NULL,
    dim          INTEGER NOT NULL,
    template_sig BLOB,
    accounts     TEXT NOT NULL,
    size         INTEGER NOT NULL,
    rate         REAL NOT NULL,
    threshold    REAL NOT NULL,
    vocabulary   BLOB NOT NULL,     -- the wrapper shingles its members hold: hashes, support, accounts (3 x uint64)
    groups       INTEGER NOT NULL   -- near-copy groups of the run the vocabulary was mined in
);
CREATE TABLE IF NOT EXISTS watch_accounts (
    family_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    first_seen REAL NOT NULL,
    source     TEXT NOT NULL,
    PRIMARY KEY (family_id, account_id)
);
CREATE TABLE IF NOT EXISTS watch_hits (
    hit        INTEGER PRIMARY KEY AUTOINCREMENT,
    family_id  TEXT NOT NULL,
    prompt_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    at         REAL NOT NULL,
    similarity REAL NOT NULL,
    batch      INTEGER
);
CREATE INDEX IF NOT EXISTS watch_hits_batch ON watch_hits (batch);
CREATE TABLE IF NOT EXISTS outbox (
    alert_id   TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created    REAL NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_try   REAL NOT NULL,
    last_error TEXT,
    delivered  REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered, url, created);
"""


@dataclass(frozen=True)
class Baseline:
    """What an analyst judged of a family: its wrapper forms, template sketch, accounts, size and rate."""

    cluster_id: str
    model: str
    forms: np.ndarray  # (n, dim) float32 unit rows; n = 0 for a cluster without wrapper forms
    template_sig: np.ndarray | None  # uint32 MinHash of the template
    accounts: frozenset[str]
    size: int
    rate: float  # prompts per day over the cluster's first-to-last-seen span (at least a day)
    threshold: float = 1.0  # cosine a text's wrapper needs to match the family on the watchlist
    vocabulary: Vocabulary = EMPTY_VOCABULARY  # the run's wrapper shingles its members hold (to extract it whole)


@dataclass(frozen=True)
class VerdictRecord:
    """One analyst verdict: on which family (and the cluster it was given on), what, who, when, why."""

    verdict_id: int
    family_id: str
    cluster_id: str
    verdict: str  # "confirmed" or "dismissed"
    note: str
    by: str  # the key's (or CLI user's) name
    key_id: str
    at: str  # ISO-8601 UTC
    size: int  # the cluster's prompts and accounts when judged
    accounts: int


@dataclass(frozen=True)
class WatchAccount:
    """An account first seen in a watched (confirmed) family after its verdict: when, and by which path."""

    account_id: str
    first_seen: str  # ISO-8601 UTC: when promptsim first saw it there
    source: str  # "ingest" (the watchlist, at POST /v1/prompts) or "dedup" (a later run)


@dataclass(frozen=True)
class JudgedFamily:
    """A family's latest verdict with its baseline."""

    family_id: str
    verdict: VerdictRecord
    baseline: Baseline


class TriageStore:
    """Verdicts, judged families, watchlist hits and the alert outbox of one index directory."""

    def __init__(self, index_dir: Path):
        self.path = touch_private(index_dir / TRIAGE_DB)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")  # readers (every ingest) never wait on a writer
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TriageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers queue here, not halfway through)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- verdicts and families -------------------------------------------------------------

    def add_verdict(self, family_id: str, verdict: dict[str, Any], baseline: Baseline) -> VerdictRecord:
        """Append a verdict (verdict, note, by_key, by_name, at) and make it, with its baseline, the family's
        latest."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO verdicts (family_id, cluster_id, verdict, note, by_key, by_name, at, size, accounts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    family_id,
                    baseline.cluster_id,
                    verdict["verdict"],
                    verdict["note"],
                    verdict["by_key"],
                    verdict["by_name"],
                    verdict["at"],
                    baseline.size,
                    len(baseline.accounts),
                ),
            )
            verdict_id = int(cursor.lastrowid or 0)
            db.execute(
                "INSERT OR REPLACE INTO families VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    family_id,
                    verdict_id,
                    baseline.cluster_id,
                    baseline.model,
                    np.ascontiguousarray(baseline.forms, "<f4").tobytes(),
                    int(baseline.forms.shape[1]) if baseline.forms.ndim == 2 else 0,
                    None if baseline.template_sig is None else np.asarray(baseline.template_sig, "<u4").tobytes(),
                    json.dumps(sorted(baseline.accounts)),
                    baseline.size,
                    baseline.rate,
                    baseline.threshold,
                    _vocabulary_bytes(baseline.vocabulary),
                    baseline.vocabulary.groups,
                ),
            )
        (found,) = self.verdicts(at_most=verdict_id, limit=1)
        return found

    def verdicts(
        self,
        *,
        family_id: str | None = None,
        cluster_id: str | None = None,
        at_most: int | None = None,
        limit: int = 100,
    ) -> list[VerdictRecord]:
        """Verdicts, newest first (verdict_id at most at_most), optionally of one family or given on one cluster."""
        clauses: list[str] = ["1 = 1"]
        params: list[Any] = []
        for column, value in (("family_id", family_id), ("cluster_id", cluster_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if at_most is not None:
            clauses.append("verdict_id <= ?")
            params.append(at_most)
        found = self._db.execute(
            f"SELECT {_VERDICT_COLUMNS} FROM verdicts WHERE {' AND '.join(clauses)} ORDER BY verdict_id DESC LIMIT ?",
            [*params, limit],
        )
        return [_verdict(row) for row in found]

    def families(self, *, status: str | None = None) -> list[JudgedFamily]:
        """Every judged family with its latest verdict and baseline (of one status, if given)."""
        found = self._db.execute(
            "SELECT f.family_id, f.cluster_id, f.model, f.forms, f.dim, f.template_sig, f.accounts, f.size, f.rate, "
            f"f.threshold, f.vocabulary, f.groups, {_prefixed('v')} FROM families f "
            "JOIN verdicts v ON v.verdict_id = f.verdict_id "
            "ORDER BY f.family_id"
        ).fetchall()
        out = [_judged(row) for row in found]
        return [f for f in out if status is None or f.verdict.verdict == status]

    def family(self, family_id: str) -> JudgedFamily | None:
        return next((f for f in self.families() if f.family_id == family_id), None)

    def version(self) -> tuple[int, int]:
        """Changes when a verdict is added (watchlists reload then): (latest verdict id, verdicts)."""
        latest, count = self._db.execute("SELECT COALESCE(MAX(verdict_id), 0), COUNT(*) FROM verdicts").fetchone()
        return int(latest), int(count)

    def move_family(self, family_id: str, cluster_id: str) -> None:
        """The family was seen as cluster_id in the latest run."""
        self._db.execute("UPDATE families SET cluster_id = ? WHERE family_id = ?", (cluster_id, family_id))

    # -- the watchlist --------------------------------------------------------------------

    def seen_accounts(self, family_id: str, accounts: dict[str, float], source: str) -> int:
        """Record accounts seen in a watched family (first sighting kept); returns how many were new."""
        if not accounts:
            return 0
        with self.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO watch_accounts VALUES (?, ?, ?, ?)",
                [(family_id, a, t, source) for a, t in accounts.items()],
            )
            return db.total_changes - before

    def watch_accounts(self, family_id: str, *, since: float | None) -> list[WatchAccount]:
        """Accounts first seen in the family at or after since, oldest first."""
        found = self._db.execute(
            "SELECT account_id, first_seen, source FROM watch_accounts WHERE family_id = ? AND first_seen >= ? "
            "ORDER BY first_seen, account_id",
            (family_id, since if since is not None else float("-inf")),
        )
        return [WatchAccount(a, to_iso(t), s) for a, t, s in found]

    def new_account_counts(self) -> dict[str, int]:
        found = self._db.execute("SELECT family_id, COUNT(*) FROM watch_accounts GROUP BY family_id")
        return {f: int(n) for f, n in found}

    def forget(self, *, prompt_ids: Sequence[str] = (), account_id: str | None = None) -> None:
        """An erasure reaches the watchlist: queued hits of erased prompts, an erased account wherever listed.

        (Alerts already queued or sent keep the ids they were sent with.)"""
        with self.transaction() as db:
            for start in range(0, len(prompt_ids), 900):
                part = list(prompt_ids[start : start + 900])
                marks = ",".join("?" * len(part))
                db.execute(f"DELETE FROM watch_hits WHERE batch IS NULL AND prompt_id IN ({marks})", part)
            if account_id is None:
                return
            db.execute("DELETE FROM watch_hits WHERE batch IS NULL AND account_id = ?", (account_id,))
            db.execute("DELETE FROM watch_accounts WHERE account_id = ?", (account_id,))
            for family_id, accounts in db.execute("SELECT family_id, accounts FROM families").fetchall():
                kept = [a for a in json.loads(accounts) if a != account_id]
                db.execute("UPDATE families SET accounts = ? WHERE family_id = ?", (json.dumps(kept), family_id))

    def add_hits(self, hits: list[tuple[str, str, str, float]]) -> None:
        """Queue watchlist hits (family_id, prompt_id, account_id, similarity) for the next alert batch."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO watch_hits (family_id, prompt_id, account_id, at, similarity) VALUES (?, ?, ?, ?, ?)",
                [(f, p, a, now, s) for f, p, a, s in hits],
            )

    def oldest_unbatched_hit(self) -> float | None:
        found = self._db.execute("SELECT MIN(at) FROM watch_hits WHERE batch IS NULL").fetchone()
        return None if found[0] is None else float(found[0])

    def claim_hits(self, url: str, make_payload: Any) -> str | None:
        """Claim every unbatched hit into a new batch and queue its alert, in one transaction; the alert id."""
        with self.transaction() as db:
            batch = int(db.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM watch_hits").fetchone()[0])
            claimed = db.execute("UPDATE watch_hits SET batch = ? WHERE batch IS NULL", (batch,)).rowcount
            if not claimed:
                return None
            hits = db.execute(
                "SELECT family_id, prompt_id, account_id, at, similarity FROM watch_hits WHERE batch = ? ORDER BY hit",
                (batch,),
            ).fetchall()
            payload = make_payload(batch, hits)
            _enqueue(db, url, payload)
            return str(payload["id"])

    # -- the outbox -----------------------------------------------------------------------

    def enqueue(self, url: str, payloads: list[dict[str, Any]]) -> int:
        """Queue alerts for url; an id already queued (or delivered) is left alone. Returns how many were new."""
        with self.transaction() as db:
            return sum(_enqueue(db, url, p) for p in payloads)

    def pending(self, url: str, *, now: float, limit: int = 50) -> list[tuple[str, dict[str, Any], int]]:
        """(alert id, payload, attempts) of undelivered alerts for url that are due, oldest first."""
        found = self._db.execute(
            "SELECT alert_id, payload, attempts FROM outbox WHERE delivered IS NULL AND url = ? AND next_try <= ? "
            "ORDER BY created, alert_id LIMIT ?",
            (url, now, limit),
        )
        return [(a, json.loads(p), int(n)) for a, p, n in found]

    def delivered(self, alert_id: str) -> None:
        self._db.execute(
            "UPDATE outbox SET delivered = ?, last_error = NULL WHERE alert_id = ?", (time.time(), alert_id)
        )

    def failed(self, alert_id: str, error: str, next_try: float) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_try = ? WHERE alert_id = ?",
            (error[:500], next_try, alert_id),
        )

    def outbox_counts(self, url: str | None = None) -> dict[str, int]:
        """{"pending": n, "delivered": n}, for one webhook or all."""
        where, params = ("WHERE url = ?", [url]) if url is not None else ("", [])
        pending, delivered = self._db.execute(
            f"SELECT COALESCE(SUM(delivered IS NULL), 0), COALESCE(SUM(delivered IS NOT NULL), 0) FROM outbox {where}",
            params,
        ).fetchone()
        return {"pending": int(pending), "delivered": int(delivered)}


_VERDICT_NAMES = (
    "verdict_id",
    "family_id",
    "cluster_id",
    "verdict",
    "note",
    "by_key",
    "by_name",
    "at",
    "size",
    "accounts",
)
_VERDICT_COLUMNS = ", ".join(_VERDICT_NAMES)


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in _VERDICT_NAMES)


def _judged(row: tuple[Any, ...]) -> JudgedFamily:
    family_id, cluster_id, model, forms, dim, sig, accounts, size, rate, threshold, vocabulary, groups = row[:12]
    vectors = np.frombuffer(forms, "<f4").astype(np.float32).reshape(-1, dim) if dim else np.zeros((0, 0), np.float32)
    baseline = Baseline(
        cluster_id=cluster_id,
        model=model,
        forms=vectors,
        template_sig=None if sig is None else np.frombuffer(sig, "<u4").astype(np.uint32),
        accounts=frozenset(json.loads(accounts)),
        size=int(size),
        rate=float(rate),
        threshold=float(threshold),
        vocabulary=_vocabulary(vocabulary, int(groups)),
    )
    return JudgedFamily(family_id, _verdict(row[12:]), baseline)


def _verdict(row: tuple[Any, ...]) -> VerdictRecord:
    verdict_id, family_id, cluster_id, verdict, note, by_key, by_name, at, size, accounts = row
    return VerdictRecord(
        int(verdict_id),
        family_id,
        cluster_id,
        verdict,
        note,
        by_name,
        by_key,
        to_iso(float(at)),
        int(size),
        int(accounts),
    )


def _vocabulary_bytes(vocabulary: Vocabulary) -> bytes:
    columns = (vocabulary.hashes, vocabulary.support, vocabulary.accounts)
    return np.stack([np.asarray(c).astype("<u8") for c in columns]).tobytes()


def _vocabulary(blob: bytes, groups: int) -> Vocabulary:
    hashes, support, accounts = np.frombuffer(blob, "<u8").reshape(3, -1)
    return Vocabulary(hashes.astype(np.uint64), support.astype(np.int64), accounts.astype(np.int64), groups)


def _enqueue(db: sqlite3.Connection, url: str, payload: dict[str, Any]) -> int:
    now = time.time()
    cursor = db.execute(
        "INSERT OR IGNORE INTO outbox (alert_id, url, payload, created, next_try) VALUES (?, ?, ?, ?, ?)",
        (str(payload["id"]), url, json.dumps(payload, ensure_ascii=False), now, now),
    )
    return cursor.rowcount

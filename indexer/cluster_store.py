"""Dedup runs and their clusters, kept in the index's SQLite file with ids that persist.

A cluster keeps its id from run to run while it persists: each new cluster inherits the id
of the earlier cluster it shares the most members with (at least half of the smaller one),
each earlier id at most once. The run records the store's last row so the next incremental
run only looks for edges of newer prompts.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.records import to_iso

from .cluster_records import Cluster, ClusterRef, split_texts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup_runs (
    run      INTEGER PRIMARY KEY AUTOINCREMENT,
    started  REAL NOT NULL,
    since    REAL,
    until    REAL,
    last_row INTEGER NOT NULL,
    stats    TEXT NOT NULL
);
-- body: everything about a cluster except prompt text (ids, counts, times, score, change, features).
CREATE TABLE IF NOT EXISTS clusters (
    cluster_id     TEXT PRIMARY KEY,
    run            INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    accounts       INTEGER NOT NULL,
    flagged        INTEGER NOT NULL,
    campaign_score REAL NOT NULL,
    last_seen      TEXT NOT NULL,
    body           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_members (
    cluster_id TEXT NOT NULL,
    row        INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, row)
);
CREATE INDEX IF NOT EXISTS cluster_members_row ON cluster_members (row);
-- The text a cluster shows is derived from its members: template and variants here, examples as
-- member rows (read from the prompts table, so a deleted prompt's text is never shown).
CREATE TABLE IF NOT EXISTS cluster_texts (
    cluster_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    position   INTEGER NOT NULL,
    text       TEXT NOT NULL,
    PRIMARY KEY (cluster_id, kind, position)
);
CREATE TABLE IF NOT EXISTS cluster_examples (
    cluster_id TEXT NOT NULL,
    position   INTEGER NOT NULL,
    row        INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, position)
);
CREATE INDEX IF NOT EXISTS cluster_examples_row ON cluster_examples (row);
"""
# Deleting a prompt (delete, purge, upsert) reaches every cluster it was in, in the same transaction:
# it leaves the member lists and examples, and the template and variants it helped make are withdrawn
# until the next dedup run derives them from the members that remain.
_TRIGGER = "prompts_leave_clusters_v2"
_TRIGGER_SQL = f"""
CREATE TRIGGER IF NOT EXISTS {_TRIGGER} AFTER DELETE ON prompts BEGIN
    DELETE FROM cluster_texts WHERE cluster_id IN (SELECT cluster_id FROM cluster_members WHERE row = OLD.row);
    DELETE FROM cluster_examples WHERE row = OLD.row;
    DELETE FROM cluster_members WHERE row = OLD.row;
END;
"""
_EXAMPLE_CHARS = 300


@dataclass(frozen=True)
class StoredCluster:
    """A current cluster and its member rows (for the jobs that read clusters: accounts, report)."""

    cluster: Cluster
    rows: np.ndarray


class ClusterStore:
    """The current clusters and the history of runs."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.executescript(_SCHEMA)
        if not _has_trigger(self._db):  # once per index: the trigger in, old bodies' text moved out
            _migrate(self._db)

    def close(self) -> None:
        self._db.close()

    def last_run(self) -> dict[str, Any] | None:
        found = self._db.execute(
            "SELECT run, started, since, until, last_row, stats FROM dedup_runs ORDER BY run DESC LIMIT 1"
        ).fetchone()
        if found is None:
            return None
        return {
            "run": found[0],
            "started": found[1],
            "since": found[2],
            "until": found[3],
            "last_row": found[4],
            "stats": json.loads(found[5]),
        }

    def previous_members(self) -> dict[str, np.ndarray]:
        """cluster id -> member rows of the current clusters."""
        members: dict[str, list[int]] = {}
        for cluster_id, row in self._db.execute("SELECT cluster_id, row FROM cluster_members"):
            members.setdefault(cluster_id, []).append(row)
        return {k: np.asarray(sorted(v), dtype=np.int64) for k, v in members.items()}

    def save_run(
        self,
        clusters: list[dict[str, Any]],
        *,
        since: float | None,
        until: float | None,
        last_row: int,
        stats: dict[str, Any],
        judge: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> int:
        """Assign stable ids and a change tag to clusters, then replace the current clusters atomically.

        judge, if given, sees the clusters once they have ids and change tags, before they are written
        (analysts' verdicts are applied there: indexer/verdicts.py).
        """
        previous = self.previous_members()
        sizes = {cid: len(rows) for cid, rows in previous.items()}
        assign_ids(clusters, previous)
        for cluster in clusters:
            cluster["change"] = _change(sizes.get(cluster["cluster_id"]), cluster["size"])
        if judge is not None:
            judge(clusters)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._db.execute(
                "INSERT INTO dedup_runs (started, since, until, last_row, stats) VALUES (?, ?, ?, ?, ?)",
                (time.time(), since, until, last_row, json.dumps(stats)),
            )
            run = int(cursor.lastrowid or 0)
            for table in ("clusters", "cluster_members", "cluster_texts", "cluster_examples"):
                self._db.execute(f"DELETE FROM {table}")
            for c in clusters:
                self._insert(run, c)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return run

    def _insert(self, run: int, c: dict[str, Any]) -> None:
        """One cluster: its text-free body, members, template and variants, and examples as member rows."""
        features, template, variants, examples = split_texts(c)
        body = {k: v for k, v in c.items() if k not in ("rows", "template", "variants", "examples")}
        body["features"] = features
        cid = c["cluster_id"]
        self._db.execute(
            "INSERT INTO clusters VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cid,
                run,
                c["size"],
                c["accounts"],
                int(c["flagged"]),
                c["campaign_score"],
                c["last_seen"],
                json.dumps(body),
            ),
        )
        self._db.executemany("INSERT INTO cluster_members VALUES (?, ?)", [(cid, int(r)) for r in c["rows"]])
        texts = ([("template", 0, template)] if template is not None else []) + [
            ("variant", n, v) for n, v in enumerate(variants)
        ]
        self._db.executemany("INSERT INTO cluster_texts VALUES (?, ?, ?, ?)", [(cid, *t) for t in texts])
        rows = self._example_rows(c["rows"], examples)
        self._db.executemany("INSERT INTO cluster_examples VALUES (?, ?, ?)", [(cid, n, r) for n, r in enumerate(rows)])

    def _example_rows(self, rows: np.ndarray, examples: list[str]) -> list[int]:
        """The member rows whose text the examples show (an example no member matches is dropped)."""
        wanted = {e[:_EXAMPLE_CHARS] for e in examples}
        found: dict[str, int] = {}
        members = sorted(int(r) for r in rows)
        for start in range(0, len(members), 900):
            if len(found) == len(wanted):
                break
            part = members[start : start + 900]
            marks = ",".join("?" * len(part))
            for row, head in self._db.execute(
                f"SELECT row, substr(text, 1, {_EXAMPLE_CHARS}) FROM prompts WHERE row IN ({marks})", part
            ):
                if head in wanted:
                    found.setdefault(head, row)
        return [found[e[:_EXAMPLE_CHARS]] for e in examples if e[:_EXAMPLE_CHARS] in found]

    def page(
        self, *, flagged: bool | None, min_accounts: int, since: str | None, after: str | None, limit: int
    ) -> list[Cluster]:
        """Current clusters, best campaign score first (ties by id), after the cursor, filtered.

        Counts are the live ones (a deleted prompt has left its cluster); no examples (they are
        per cluster). after: a cursor from page_cursor, for the page after the cluster it names.
        """
        clauses: list[str] = ["accounts >= ?"]
        params: list[int | float | str] = [min_accounts]  # the counts of the run bound the live ones
        if flagged is not None:
            clauses.append("flagged = ?")
            params.append(int(flagged))
        if since is not None:
            clauses.append("last_seen >= ?")
            params.append(since)
        if after is not None:
            score, cluster_id = parse_cursor(after)
            clauses.append("(campaign_score < ? OR (campaign_score = ? AND cluster_id > ?))")
            params += [score, score, cluster_id]
        found: list[Cluster] = []
        query = f"SELECT body FROM clusters WHERE {' AND '.join(clauses)} ORDER BY campaign_score DESC, cluster_id"
        for (body,) in self._db.execute(query, params).fetchall():
            cluster = self._cluster(json.loads(body), with_examples=False)
            live = cluster.size >= 2 and cluster.accounts >= min_accounts
            if live and (since is None or cluster.last_seen >= since):
                found.append(cluster)
                if len(found) == limit:
                    break
        return found

    def get(self, cluster_id: str) -> StoredCluster | None:
        """One current cluster with its examples and member rows, or None."""
        found = self._db.execute("SELECT body FROM clusters WHERE cluster_id = ?", (cluster_id,)).fetchone()
        if found is None:
            return None
        rows = self._db.execute("SELECT row FROM cluster_members WHERE cluster_id = ? ORDER BY row", (cluster_id,))
        members = np.asarray([r for (r,) in rows], dtype=np.int64)
        return StoredCluster(self._cluster(json.loads(found[0]), with_examples=True), members)

    def clusters(self, *, flagged_only: bool = False) -> list[StoredCluster]:
        """Current clusters, best campaign score first, with member rows."""
        where = "WHERE flagged = 1" if flagged_only else ""
        found = self._db.execute(
            f"SELECT cluster_id, body FROM clusters {where} ORDER BY campaign_score DESC, cluster_id"
        ).fetchall()
        members = self.previous_members()
        return [
            StoredCluster(self._cluster(json.loads(body), with_examples=True), members.get(cid, np.zeros(0, np.int64)))
            for cid, body in found
        ]

    def _examples(self, cluster_id: str) -> list[str]:
        """The examples' text as stored now (a deleted example is gone with its prompt)."""
        return [t for (t,) in self._db.execute(_examples_sql(), (cluster_id,))]

    def _live_counts(self, cluster_id: str, size: int) -> dict[str, Any]:
        """size, accounts, first and last seen of the members still stored (the run's, if none left it)."""
        (members,) = self._db.execute(
            "SELECT COUNT(*) FROM cluster_members WHERE cluster_id = ?", (cluster_id,)
        ).fetchone()
        if members == size:
            return {}
        accounts, first, last = self._db.execute(
            "SELECT COUNT(DISTINCT p.account_id), MIN(p.ts), MAX(p.ts) FROM cluster_members m "
            "JOIN prompts p ON p.row = m.row WHERE m.cluster_id = ?",
            (cluster_id,),
        ).fetchone()
        live: dict[str, Any] = {"size": members, "accounts": accounts}
        if members:
            live.update(first_seen=to_iso(first), last_seen=to_iso(last))
        return live

    def _cluster(self, body: dict[str, Any], *, with_examples: bool) -> Cluster:
        cid = body["cluster_id"]
        body = {**body, **self._live_counts(cid, int(body["size"]))}  # deletes since the run count
        texts = self._db.execute(
            "SELECT kind, text FROM cluster_texts WHERE cluster_id = ? ORDER BY kind, position", (cid,)
        ).fetchall()
        template = next((t for kind, t in texts if kind == "template"), None)
        examples = self._examples(cid) if with_examples else []
        features, _, _, _ = split_texts(body)  # an old body's text features never reach a reader
        return Cluster(
            cluster_id=cid,
            size=int(body["size"]),
            accounts=int(body["accounts"]),
            first_seen=str(body["first_seen"]),
            last_seen=str(body["last_seen"]),
            campaign_score=float(body["campaign_score"]),
            flagged=bool(body["flagged"]),
            change=str(body.get("change", "")),
            template=template,
            variants=tuple(t for kind, t in texts if kind == "variant"),
            examples=tuple(examples),
            features=features,
        )


def page_cursor(cluster: Cluster) -> str:
    """The cursor of the page after cluster: its score and id (pages run best score first)."""
    return f"{cluster.campaign_score!r}:{cluster.cluster_id}"


CURSOR_PATTERN = r"^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?:.{1,64}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def parse_cursor(cursor: str) -> tuple[float, str]:
    """(campaign score, cluster id) of a page cursor; ValueError for anything page_cursor never made."""
    if not _CURSOR.match(cursor):
        raise ValueError(f"cursor {cursor!r} not understood; pass back a next_cursor, or none for the first page")
    score, cluster_id = cursor.split(":", 1)
    return float(score), cluster_id


def _examples_sql() -> str:
    return (
        f"SELECT substr(p.text, 1, {_EXAMPLE_CHARS}) FROM cluster_examples e JOIN prompts p ON p.row = e.row "
        "WHERE e.cluster_id = ? ORDER BY e.position"
    )


def _change(before: int | None, size: int) -> str:
    if before is None:
        return "new"
    return "grown" if size > before else "shrunk" if size < before else "unchanged"


def _has_trigger(db: sqlite3.Connection) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (_TRIGGER,)).fetchone()
    return found is not None


def _migrate(db: sqlite3.Connection) -> None:
    """Move prompt text out of bodies written before cluster_texts existed, and install the trigger."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if not _has_trigger(db):
            for cid, raw in db.execute("SELECT cluster_id, body FROM clusters").fetchall():
                body = json.loads(raw)
                features, template, variants, _ = split_texts(body)  # old examples: back at the next dedup run
                texts = ([("template", 0, template)] if template is not None else []) + [
                    ("variant", n, v) for n, v in enumerate(variants)
                ]
                db.executemany("INSERT OR REPLACE INTO cluster_texts VALUES (?, ?, ?, ?)", [(cid, *t) for t in texts])
                clean = {k: v for k, v in body.items() if k not in ("template", "variants", "examples")}
                db.execute(
                    "UPDATE clusters SET body = ? WHERE cluster_id = ?",
                    (json.dumps({**clean, "features": features}), cid),
                )
            db.execute("DROP TRIGGER IF EXISTS prompts_leave_clusters")  # the old one: members only
            db.execute(_TRIGGER_SQL)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def stored_cluster(db_path: Path, cluster_id: str) -> StoredCluster | None:
    """One cluster of the last run, by id, through a connection of its own; None if there is none."""
    store = ClusterStore(db_path)
    try:
        return store.get(cluster_id)
    finally:
        store.close()


def clusters_of_ids(db_path: Path, prompt_ids: list[str]) -> dict[str, ClusterRef]:
    """prompt id -> the current cluster it is in, for prompts in one."""
    found: dict[str, ClusterRef] = {}
    if not prompt_ids:
        return found
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as db:
        has = db.execute("SELECT name FROM sqlite_master WHERE name = 'clusters'").fetchone()
        if not has:
            return found
        for start in range(0, len(prompt_ids), 900):
            part = prompt_ids[start : start + 900]
            marks = ",".join("?" * len(part))
            for pid, cid, flagged, score in db.execute(
                "SELECT p.id, m.cluster_id, c.flagged, c.campaign_score FROM prompts p "
                "JOIN cluster_members m ON m.row = p.row JOIN clusters c ON c.cluster_id = m.cluster_id "
                f"WHERE p.id IN ({marks})",
                part,
            ):
                found[pid] = ClusterRef(cid, bool(flagged), float(score))
    return found


def assign_ids(clusters: list[dict[str, Any]], previous: dict[str, np.ndarray]) -> None:
    """Give each cluster the id of its best-overlapping earlier cluster, or a new one."""
    owner = {int(r): cid for cid, rows in previous.items() for r in rows.tolist()}
    candidates = []
    for n, cluster in enumerate(clusters):
        overlap: dict[str, int] = {}
        for r in cluster["rows"].tolist():
            cid = owner.get(int(r))
            if cid is not None:
                overlap[cid] = overlap.get(cid, 0) + 1
        for cid, common in overlap.items():
            if common * 2 >= min(len(previous[cid]), len(cluster["rows"])):
                candidates.append((common, n, cid))
    taken: set[str] = set()
    for _, n, cid in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if cid not in taken and "cluster_id" not in clusters[n]:
            clusters[n]["cluster_id"] = cid
            taken.add(cid)
    for cluster in clusters:
        if "cluster_id" not in cluster:
            first = int(cluster["rows"].min())
            cluster["cluster_id"] = "c" + hashlib.sha1(f"{first}:{len(cluster['rows'])}".encode()).hexdigest()[:10]
            while cluster["cluster_id"] in taken:  # a reused founder row; vanishingly rare
                cluster["cluster_id"] = "c" + hashlib.sha1(cluster["cluster_id"].encode()).hexdigest()[:10]
            taken.add(cluster["cluster_id"])

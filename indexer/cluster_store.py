"""Dedup runs and their clusters, kept in the index's SQLite file with ids that persist.

A cluster keeps its id from run to run while it persists: each new cluster inherits the id
of the earlier cluster it shares the most members with (at least half of the smaller one),
each earlier id at most once. The run records the store's last row so the next incremental
run only looks for edges of newer prompts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup_runs (
    run      INTEGER PRIMARY KEY AUTOINCREMENT,
    started  REAL NOT NULL,
    since    REAL,
    until    REAL,
    last_row INTEGER NOT NULL,
    stats    TEXT NOT NULL
);
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
-- Deleting a prompt (delete, purge, upsert) drops it from cluster member lists in the same transaction.
CREATE TRIGGER IF NOT EXISTS prompts_leave_clusters AFTER DELETE ON prompts BEGIN
    DELETE FROM cluster_members WHERE row = OLD.row;
END;
"""


class ClusterStore:
    """The current clusters and the history of runs."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.executescript(_SCHEMA)

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
    ) -> int:
        """Assign stable ids and a change tag to clusters, then replace the current clusters atomically."""
        previous = self.previous_members()
        sizes = {cid: len(rows) for cid, rows in previous.items()}
        assign_ids(clusters, previous)
        for cluster in clusters:
            before = sizes.get(cluster["cluster_id"])
            cluster["change"] = (
                "new"
                if before is None
                else "grown"
                if cluster["size"] > before
                else "shrunk"
                if cluster["size"] < before
                else "unchanged"
            )
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._db.execute(
                "INSERT INTO dedup_runs (started, since, until, last_row, stats) VALUES (?, ?, ?, ?, ?)",
                (time.time(), since, until, last_row, json.dumps(stats)),
            )
            run = int(cursor.lastrowid or 0)
            self._db.execute("DELETE FROM clusters")
            self._db.execute("DELETE FROM cluster_members")
            for c in clusters:
                body = {k: v for k, v in c.items() if k not in ("rows",)}
                self._db.execute(
                    "INSERT INTO clusters VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        c["cluster_id"],
                        run,
                        c["size"],
                        c["accounts"],
                        int(c["flagged"]),
                        c["campaign_score"],
                        c["last_seen"],
                        json.dumps(body),
                    ),
                )
                self._db.executemany(
                    "INSERT INTO cluster_members VALUES (?, ?)", [(c["cluster_id"], int(r)) for r in c["rows"]]
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return run

    def page(
        self, *, flagged: bool | None, min_accounts: int, since: str | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Current clusters ordered by id, after the cursor, filtered (for the HTTP API)."""
        clauses, params = ["accounts >= ?"], [min_accounts]
        if flagged is not None:
            clauses.append("flagged = ?")
            params.append(int(flagged))
        if since is not None:
            clauses.append("last_seen >= ?")
            params.append(since)
        if after is not None:
            clauses.append("cluster_id > ?")
            params.append(after)
        found = self._db.execute(
            f"SELECT body FROM clusters WHERE {' AND '.join(clauses)} ORDER BY cluster_id LIMIT ?", [*params, limit]
        ).fetchall()
        return [json.loads(body) for (body,) in found]

    def get(self, cluster_id: str) -> dict[str, Any] | None:
        found = self._db.execute("SELECT body FROM clusters WHERE cluster_id = ?", (cluster_id,)).fetchone()
        if found is None:
            return None
        rows = [
            r
            for (r,) in self._db.execute(
                "SELECT row FROM cluster_members WHERE cluster_id = ? ORDER BY row", (cluster_id,)
            )
        ]
        return {**json.loads(found[0]), "rows": rows}

    def clusters(self, *, flagged_only: bool = False) -> list[dict[str, Any]]:
        """Current clusters, best campaign score first, with member rows."""
        where = "WHERE flagged = 1" if flagged_only else ""
        found = self._db.execute(
            f"SELECT cluster_id, body FROM clusters {where} ORDER BY campaign_score DESC, cluster_id"
        ).fetchall()
        members = self.previous_members()
        return [{**json.loads(body), "rows": members.get(cid, np.zeros(0, np.int64))} for cid, body in found]


def clusters_of_ids(db_path: Path, prompt_ids: list[str]) -> dict[str, dict[str, Any]]:
    """prompt id -> {cluster_id, flagged, campaign_score} for prompts in a current cluster."""
    found: dict[str, dict[str, Any]] = {}
    if not prompt_ids:
        return found
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
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
                found[pid] = {"cluster_id": cid, "flagged": bool(flagged), "campaign_score": score}
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

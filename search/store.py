"""PromptStore: the SQLite file that is the source of truth for prompts and their signals.

Every prompt lives in one row (`row` never reused) with its raw text, account, time,
metadata, a content digest (for idempotent upserts) and its signals (vector and MinHash
signature as blobs), so FAISS and the LSH can always be regenerated from here. Deleted
rows are logged in `deletions`; the derived structures record the highest row and
deletion they reflect (the watermark) and replay the rest when opened.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StorageFailed
from .records import Prompt, check_prompt
from .signals import EMPTY, Signals

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prompts (
    row        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    text       TEXT NOT NULL,
    account_id TEXT NOT NULL,
    ts         REAL NOT NULL,
    metadata   TEXT NOT NULL,
    digest     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS prompts_account ON prompts (account_id, ts);
CREATE INDEX IF NOT EXISTS prompts_ts ON prompts (ts);
-- Covers the (account, time) reads of RowFacts: in the table those columns sit behind the
-- text, on overflow pages for long prompts (1.6x faster on sets of 50-3,000 rows).
CREATE INDEX IF NOT EXISTS prompts_facts ON prompts (row, account_id, ts);
CREATE TABLE IF NOT EXISTS signals (
    row       INTEGER PRIMARY KEY,
    vector    BLOB NOT NULL,
    signature BLOB NOT NULL,
    windows   BLOB            -- head and tail window signatures; NULL for short prompts
);
CREATE TABLE IF NOT EXISTS deletions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    row INTEGER NOT NULL
);
"""
# RowFacts reads name the covering index (SQLite's planner otherwise may scan the table).
_BY_FACTS = "INDEXED BY prompts_facts"
# SQLite limits host parameters per statement; stay well under the 32,766 default.
_CHUNK = 900


@dataclass(frozen=True)
class Watermark:
    """The last store row and deletion a derived structure reflects."""

    row: int
    deletion: int

    def as_list(self) -> list[int]:
        return [self.row, self.deletion]


@dataclass(frozen=True)
class StoredPrompt:
    """A prompt as stored, with its row id."""

    row: int
    id: str
    text: str
    account_id: str
    timestamp: float
    metadata: dict[str, Any]


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class PromptStore:
    """SQLite store in WAL mode; writes happen in one transaction per batch."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = path
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            # FULL: an acknowledged batch survives power loss too, not only a killed process.
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- writes -------------------------------------------------------------------------

    def digests(self, ids: Sequence[str]) -> dict[str, str]:
        """Stored content digest of each id that exists."""
        found: dict[str, str] = {}
        for part in _chunks(ids):
            marks = ",".join("?" * len(part))
            found.update(self._db.execute(f"SELECT id, digest FROM prompts WHERE id IN ({marks})", part).fetchall())
        return found

    def versions(self, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """(stored content digest, row) of each id that exists; a row above a watermark was written after it."""
        found: dict[str, tuple[str, int]] = {}
        for part in _chunks(ids):
            marks = ",".join("?" * len(part))
            for pid, digest, row in self._db.execute(
                f"SELECT id, digest, row FROM prompts WHERE id IN ({marks})", part
            ).fetchall():
                found[pid] = (digest, row)
        return found

    def texts_by_id(self, ids: Sequence[str], *, lengths_only: bool = False) -> dict[str, Any]:
        """Each stored id's whole text (or, with lengths_only, its length in characters)."""
        column = "length(text)" if lengths_only else "text"
        found: dict[str, Any] = {}
        for part in _chunks(ids):
            marks = ",".join("?" * len(part))
            found.update(self._db.execute(f"SELECT id, {column} FROM prompts WHERE id IN ({marks})", part).fetchall())
        return found

    def upsert(self, prompts: Sequence[Prompt], signals: Signals) -> tuple[np.ndarray, np.ndarray]:
        """Insert or replace prompts by id in one transaction; returns (new rows, removed rows).

        Every prompt is checked first (ValueError): a record that cannot be read back is never committed.
        """
        for prompt in prompts:
            check_prompt(prompt)
        with self._transaction():
            removed = self._delete_where_ids([p.id for p in prompts])
            if len(prompts) != len(signals):
                raise ValueError(f"{len(prompts)} prompts but {len(signals)} signals")
            # Number the rows here, after the newest ever issued, so one executemany inserts the
            # batch (a statement per prompt was a tenth of bulk ingest). BEGIN IMMEDIATE makes
            # this the only writer, and AUTOINCREMENT's sequence still advances past them.
            first = self.watermark().row + 1
            rows = list(range(first, first + len(prompts)))
            self._db.executemany(
                "INSERT INTO prompts (row, id, text, account_id, ts, metadata, digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (row, p.id, p.text, p.account_id, p.timestamp, json.dumps(p.metadata, default=str), p.digest)
                    for row, p in zip(rows, prompts)
                ],
            )
            has_windows = signals.has_windows
            self._db.executemany(
                "INSERT INTO signals (row, vector, signature, windows) VALUES (?, ?, ?, ?)",
                [
                    (
                        r,
                        signals.vectors[i].astype(np.float32).tobytes(),
                        signals.signatures[i].astype(np.uint32).tobytes(),
                        signals.windows[i].astype(np.uint32).tobytes() if has_windows[i] else None,
                    )
                    for i, r in enumerate(rows)
                ],
            )
        return np.asarray(rows, dtype=np.int64), removed

    def delete_ids(self, ids: Sequence[str]) -> np.ndarray:
        """Delete prompts by id; returns the removed rows."""
        with self._transaction():
            return self._delete_where_ids(ids)

    def delete_older_than(self, cutoff: float) -> np.ndarray:
        """Delete every prompt with timestamp < cutoff; returns the removed rows."""
        with self._transaction():
            rows = [r for (r,) in self._db.execute("SELECT row FROM prompts WHERE ts < ?", (cutoff,))]
            return self._delete_rows(rows)

    def delete_account(self, account_id: str) -> np.ndarray:
        """Delete every prompt of an account; returns the removed rows."""
        with self._transaction():
            rows = [r for (r,) in self._db.execute("SELECT row FROM prompts WHERE account_id = ?", (account_id,))]
            return self._delete_rows(rows)

    def _delete_where_ids(self, ids: Sequence[str]) -> np.ndarray:
        rows: list[int] = []
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            rows += [r for (r,) in self._db.execute(f"SELECT row FROM prompts WHERE id IN ({marks})", part)]
        return self._delete_rows(rows)

    def _delete_rows(self, rows: list[int]) -> np.ndarray:
        for part in _chunks(rows):
            marks = ",".join("?" * len(part))
            self._db.execute(f"DELETE FROM prompts WHERE row IN ({marks})", part)
            self._db.execute(f"DELETE FROM signals WHERE row IN ({marks})", part)
        self._db.executemany("INSERT INTO deletions (row) VALUES (?)", [(r,) for r in rows])
        return np.asarray(rows, dtype=np.int64)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- change log ---------------------------------------------------------------------

    def watermark(self) -> Watermark:
        """The newest row ever inserted and the newest deletion."""
        seqs = dict(self._db.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
        return Watermark(int(seqs.get("prompts", 0)), int(seqs.get("deletions", 0)))

    def changes_since(self, mark: Watermark) -> tuple[np.ndarray, np.ndarray]:
        """Rows added after mark that still exist, and rows (at or before mark) deleted after it."""
        added = [r for (r,) in self._db.execute("SELECT row FROM prompts WHERE row > ? ORDER BY row", (mark.row,))]
        deleted = [
            r
            for (r,) in self._db.execute(
                "SELECT row FROM deletions WHERE seq > ? AND row <= ?", (mark.deletion, mark.row)
            )
        ]
        return np.asarray(added, dtype=np.int64), np.asarray(deleted, dtype=np.int64)

    # -- reads --------------------------------------------------------------------------

    def signals(self, rows: Sequence[int] | np.ndarray, dim: int, num_perm: int) -> tuple[np.ndarray, Signals]:
        """(rows found, their Signals) for the given rows, in row order.

        Decoded chunk by chunk into arrays allocated once, so a million rows cost their arrays
        (~3 KB each) and not also a second copy as Python bytes.
        """
        wanted = sorted({int(r) for r in rows})
        out_rows = np.zeros(len(wanted), dtype=np.int64)
        vectors = np.zeros((len(wanted), dim), dtype=np.float32)
        signatures = np.zeros((len(wanted), num_perm), dtype=np.uint32)
        windows = np.zeros((len(wanted), 2, num_perm), dtype=np.uint32)
        filled = 0
        for part in _chunks(wanted):
            marks = ",".join("?" * len(part))
            found = self._db.execute(
                f"SELECT row, vector, signature, windows FROM signals WHERE row IN ({marks}) ORDER BY row", part
            ).fetchall()
            chunk_rows, chunk = _decode_signals(found, dim, num_perm)
            end = filled + len(chunk_rows)
            out_rows[filled:end], vectors[filled:end] = chunk_rows, chunk.vectors
            signatures[filled:end], windows[filled:end] = chunk.signatures, chunk.windows
            filled = end
        return out_rows[:filled], Signals(vectors[:filled], signatures[:filled], windows[:filled])

    def iter_signals(
        self, dim: int, num_perm: int, batch: int = 50_000, *, with_vectors: bool = True
    ) -> Iterator[tuple[np.ndarray, Signals]]:
        """Every stored (rows, Signals), in row order, a batch at a time.

        with_vectors=False reads only the MinHash columns (half the bytes); vectors come back (n, 0).
        """
        vector = "vector" if with_vectors else "NULL"
        for chunk in self._pages(f"SELECT row, {vector}, signature, windows FROM signals", batch):
            yield _decode_signals(chunk, dim if with_vectors else 0, num_perm)

    def vectors(self, rows: np.ndarray, dim: int) -> np.ndarray:
        """The stored vectors of rows (each must exist), in the order given."""
        out = np.zeros((len(rows), dim), dtype=np.float32)
        at = {int(r): i for i, r in enumerate(rows.tolist())}
        for part in _chunks(sorted(at)):
            marks = ",".join("?" * len(part))
            for row, blob in self._db.execute(f"SELECT row, vector FROM signals WHERE row IN ({marks})", part):
                out[at[row]] = np.frombuffer(blob, dtype=np.float32)
        return out

    def iter_vectors(self, dim: int, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored (rows, vectors), in row order, a batch at a time (a quarter of the signals' bytes)."""
        for chunk in self._pages("SELECT row, vector FROM signals", batch):
            rows = np.asarray([r[0] for r in chunk], dtype=np.int64)
            yield rows, np.frombuffer(b"".join(r[1] for r in chunk), dtype=np.float32).reshape(len(chunk), dim)

    def fetch(self, rows: Iterable[int]) -> dict[int, StoredPrompt]:
        """Stored prompts by row."""
        out: dict[int, StoredPrompt] = {}
        for part in _chunks(sorted({int(r) for r in rows})):
            marks = ",".join("?" * len(part))
            for rec in self._db.execute(
                f"SELECT row, id, text, account_id, ts, metadata FROM prompts WHERE row IN ({marks})", part
            ):
                out[rec[0]] = StoredPrompt(rec[0], rec[1], rec[2], rec[3], rec[4], json.loads(rec[5]))
        return out

    def row_of(self, prompt_id: str) -> int | None:
        hit = self._db.execute("SELECT row FROM prompts WHERE id = ?", (prompt_id,)).fetchone()
        return int(hit[0]) if hit else None

    def rows_matching(
        self,
        *,
        account_ids: Sequence[str] = (),
        exclude_account_ids: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
    ) -> np.ndarray:
        """Rows passing the filters (for filtered search)."""
        clauses: list[str] = []
        params: list[str | float] = []
        if account_ids:
            clauses.append(f"account_id IN ({','.join('?' * len(account_ids))})")
            params += list(account_ids)
        if exclude_account_ids:
            clauses.append(f"account_id NOT IN ({','.join('?' * len(exclude_account_ids))})")
            params += list(exclude_account_ids)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since)
        if until is not None:
            clauses.append("ts < ?")
            params.append(until)
        where = " AND ".join(clauses) or "1"
        rows = self._db.execute(f"SELECT row FROM prompts WHERE {where}", params).fetchall()
        return np.asarray([r for (r,) in rows], dtype=np.int64)

    def __len__(self) -> int:
        """How many prompts are stored."""
        return int(self._db.execute("SELECT COUNT(*) FROM prompts").fetchone()[0])

    def stats(self) -> dict[str, Any]:
        """Counts and time range of what is stored."""
        prompts, accounts, first, last = self._db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT account_id), MIN(ts), MAX(ts) FROM prompts"
        ).fetchone()
        return {"prompts": prompts, "accounts": accounts, "first_seen": first, "last_seen": last}

    def window(self, since: float | None, until: float | None) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
        """(rows, account codes, account names, timestamps) of every prompt with since <= ts < until,
        in row order; codes index the sorted names.

        Read a chunk at a time and coded as it goes, so a window costs 24 bytes a prompt, not a
        Python string per prompt (the dedup driver holds this for the whole window).
        """
        lo = -np.inf if since is None else since
        hi = np.inf if until is None else until
        query = "SELECT row, account_id, ts FROM prompts WHERE ts >= ? AND ts < ? ORDER BY row"
        cursor = self._db.execute(query, (lo, hi))
        return _coded(iter(lambda: cursor.fetchmany(100_000), []))

    def account_counts(self, accounts: Sequence[str], since: float, until: float) -> np.ndarray:
        """How many prompts each account sent with since <= ts < until (aligned with accounts)."""
        count_of: dict[str, int] = {}
        for part in _chunks(list(accounts)):
            marks = ",".join("?" * len(part))
            count_of.update(
                self._db.execute(
                    f"SELECT account_id, COUNT(*) FROM prompts WHERE account_id IN ({marks}) AND ts >= ? AND ts < ? "
                    "GROUP BY account_id",
                    [*part, since, until],
                ).fetchall()
            )
        return np.asarray([count_of.get(a, 0) for a in accounts], dtype=np.int64)

    def window_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
        """What window() gives, for the given rows (those that still exist) instead of a time range."""

        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            for part in _chunks(sorted({int(r) for r in rows})):
                marks = ",".join("?" * len(part))
                yield self._db.execute(
                    f"SELECT row, account_id, ts FROM prompts WHERE row IN ({marks}) ORDER BY row", part
                ).fetchall()

        return _coded(chunks())

    def rows_after(self, row: int) -> np.ndarray:
        """Rows inserted after the given row that still exist."""
        found = self._db.execute("SELECT row FROM prompts WHERE row > ? ORDER BY row", (row,)).fetchall()
        return np.asarray([r for (r,) in found], dtype=np.int64)

    def ids_of(self, rows: Iterable[int]) -> dict[int, str]:
        """Prompt id of each row that exists."""
        return dict(self._column_of(rows, "id"))

    def accounts_of(self, rows: Iterable[int]) -> dict[int, str]:
        """Account of each row that exists."""
        return dict(self._column_of(rows, "account_id"))

    def timestamps_of(self, rows: Iterable[int]) -> dict[int, float]:
        """Timestamp of each row that exists."""
        return dict(self._column_of(rows, "ts"))

    def _column_of(self, rows: Iterable[int], column: str) -> list[tuple[int, Any]]:
        found: list[tuple[int, Any]] = []
        for part in _chunks(sorted({int(r) for r in rows})):
            marks = ",".join("?" * len(part))
            found += self._db.execute(f"SELECT row, {column} FROM prompts WHERE row IN ({marks})", part).fetchall()
        return found

    def prompts_per_account(self, accounts: Sequence[str]) -> dict[str, int]:
        """How many prompts each account has stored."""
        counts: dict[str, int] = {}
        for part in _chunks(list(accounts)):
            marks = ",".join("?" * len(part))
            counts.update(
                self._db.execute(
                    f"SELECT account_id, COUNT(*) FROM prompts WHERE account_id IN ({marks}) GROUP BY account_id", part
                )
            )
        return counts

    def iter_facts(self, batch: int = 100_000) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
        """Every stored (rows, accounts, times), in row order, a batch at a time (for RowFacts)."""
        for chunk in self._pages(f"SELECT row, account_id, ts FROM prompts {_BY_FACTS}", batch):
            yield _decode_facts(chunk)

    def _pages(self, select: str, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        """select's rows (row id first) in row order, batch at a time, by keyset: no OFFSET rescans."""
        last = 0
        while chunk := self._db.execute(f"{select} WHERE row > ? ORDER BY row LIMIT ?", (last, batch)).fetchall():
            last = int(chunk[-1][0])
            yield chunk

    def facts_of(self, rows: Iterable[int]) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(rows, accounts, times) of the given rows that exist, in row order."""
        found: list[tuple[int, str, float]] = []
        for part in _chunks(sorted({int(r) for r in rows})):
            marks = ",".join("?" * len(part))
            found += self._db.execute(
                f"SELECT row, account_id, ts FROM prompts {_BY_FACTS} WHERE row IN ({marks}) ORDER BY row",
                part,
            ).fetchall()
        return _decode_facts(found)

    def duplicate_ids(self) -> int:
        """How many ids appear more than once (always 0 unless the file was tampered with)."""
        return int(self._db.execute("SELECT COUNT(*) - COUNT(DISTINCT id) FROM prompts").fetchone()[0])


def _decode_facts(records: list[tuple[int, str, float]]) -> tuple[np.ndarray, list[str], np.ndarray]:
    rows = np.fromiter((r[0] for r in records), dtype=np.int64, count=len(records))
    times = np.fromiter((r[2] for r in records), dtype=np.float64, count=len(records))
    return rows, [r[1] for r in records], times


def _coded(chunks: Iterable[list[tuple[Any, ...]]]) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(rows, account codes, account names, timestamps) of (row, account, ts) chunks in row order;
    codes index the sorted names. Coded as it goes: 24 bytes a prompt, not a string per prompt."""
    code_of: dict[str, int] = {}
    rows, codes, stamps = [], [], []
    for chunk in chunks:
        rows.append(np.fromiter((c[0] for c in chunk), np.int64, len(chunk)))
        codes.append(np.fromiter((code_of.setdefault(c[1], len(code_of)) for c in chunk), np.int64, len(chunk)))
        stamps.append(np.fromiter((c[2] for c in chunk), np.float64, len(chunk)))
    names = sorted(code_of)
    sorted_code = np.zeros(len(names), np.int64)
    sorted_code[[code_of[n] for n in names]] = np.arange(len(names))
    first_seen = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    return (
        np.concatenate(rows) if rows else np.zeros(0, np.int64),
        sorted_code[first_seen],
        names,
        np.concatenate(stamps) if stamps else np.zeros(0, np.float64),
    )


def _decode_signals(records: list[tuple[Any, ...]], dim: int, num_perm: int) -> tuple[np.ndarray, Signals]:
    n = len(records)
    empty_windows = np.full(2 * num_perm, EMPTY, dtype=np.uint32).tobytes()
    rows = np.asarray([r[0] for r in records], dtype=np.int64)
    vectors = np.frombuffer(b"".join(r[1] or b"" for r in records), dtype=np.float32).reshape(n, dim)
    signatures = np.frombuffer(b"".join(r[2] for r in records), dtype=np.uint32).reshape(n, num_perm)
    windows = np.frombuffer(b"".join(r[3] or empty_windows for r in records), dtype=np.uint32).reshape(n, 2, num_perm)
    return rows, Signals(vectors, signatures, windows)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as err:
                self._rollback()
                raise StorageFailed.from_error(err) or err from err
        self._rollback()
        if isinstance(exc, sqlite3.Error) and (storage := StorageFailed.from_error(exc)) is not None:
            raise storage from exc

    def _rollback(self) -> None:
        """Roll back unless SQLite already did: on a full disk it may, and a second ROLLBACK would raise,
        hiding why (and a COMMIT that failed without it would leave the connection inside the transaction)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

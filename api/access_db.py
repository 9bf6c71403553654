"""DIR/access.sqlite: the state every worker shares for access control (rate buckets, sessions).

Not index data: never in a snapshot, never touched by a restore. Mode 600; its durability
is relaxed (synchronous=OFF): losing the last rate-limit tick in a power cut costs nothing,
and a lost session only signs someone out.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from indexer.private_files import touch_private

ACCESS_DB = "access.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    bucket  TEXT PRIMARY KEY,
    tokens  REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    expires      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_key ON sessions (key_id);
"""


class AccessDb:
    """One connection per worker, serialised by a lock (each statement is a few microseconds)."""

    def __init__(self, path: Path):
        touch_private(path)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(_SCHEMA)
        self.lock = threading.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    def close(self) -> None:
        self._db.close()

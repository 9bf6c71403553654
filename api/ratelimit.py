"""Rate limits shared by every worker: token buckets in SQLite, one per key, session or client address.

A bucket holds up to `burst` tokens and refills at `rate` per second; a request takes one.
The buckets live in DIR/access.sqlite, so N workers allow the rate once, not N times.
"""

from __future__ import annotations

import math
import sqlite3
import time

from search.errors import StorageFailed

from .access_db import AccessDb


class SharedRateLimiter:
    def __init__(self, access: AccessDb):
        self._access = access
        self._local: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, updated), while the disk refuses writes

    def take(self, bucket: str, rate: float, burst: int) -> float:
        """0 if the request may go ahead (a token is taken), else the seconds to wait before retrying.

        When access.sqlite cannot be written (a full or read-only disk), this worker keeps the
        buckets in memory instead: searches go on being answered, still rate-limited (per worker),
        and the writes themselves fail with a clear 507 or 503.
        """
        with self._access.lock:
            db = self._access.db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    now = time.time()
                    found = db.execute("SELECT tokens, updated FROM buckets WHERE bucket = ?", (bucket,)).fetchone()
                    tokens, wait = _refill(found, now, rate, burst)
                    db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (bucket, tokens, now))
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:  # SQLite may have rolled back already (a full disk)
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as err:
                if StorageFailed.from_error(err) is None:
                    raise
                now = time.time()
                tokens, wait = _refill(self._local.get(bucket), now, rate, burst)
                self._local[bucket] = (tokens, now)
        return wait


def _refill(found: tuple[float, float] | None, now: float, rate: float, burst: int) -> tuple[float, float]:
    """(tokens left after this request, seconds to wait: 0 if it may go ahead)."""
    tokens, updated = found if found else (float(burst), now)
    tokens = min(float(burst), tokens + max(0.0, now - updated) * rate)
    wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
    return (tokens - 1.0 if not wait else tokens), wait


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))

"""Rate limits shared by every worker: token buckets in SQLite, one per key, session or client address.

A bucket holds up to `burst` tokens and refills at `rate` per second; a request takes one.
The buckets live in DIR/access.sqlite, so N workers allow the rate once, not N times.
"""

from __future__ import annotations

import math
import time

from .access_db import AccessDb


class SharedRateLimiter:
    def __init__(self, access: AccessDb):
        self._access = access

    def take(self, bucket: str, rate: float, burst: int) -> float:
        """0 if the request may go ahead (a token is taken), else the seconds to wait before retrying."""
        with self._access.lock:
            db = self._access.db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                found = db.execute("SELECT tokens, updated FROM buckets WHERE bucket = ?", (bucket,)).fetchone()
                tokens, updated = found if found else (float(burst), now)
                tokens = min(float(burst), tokens + max(0.0, now - updated) * rate)
                wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
                db.execute(
                    "INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)",
                    (bucket, tokens - 1.0 if not wait else tokens, now),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return wait


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))

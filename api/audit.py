"""The audit log: one JSON line per response that returned prompt text (raw or masked)."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.jsonl"


class AuditLog:
    """Appends under an exclusive lock, so several workers can share the file."""

    def __init__(self, path: Path):
        self.path = path

    def record(self, *, key_id: str, key_name: str, endpoint: str, query: Any, returned: int, raw: bool) -> None:
        """Append one entry: who (key), when, which endpoint and query, how many prompts, raw or masked."""
        entry = {
            "time": time.time(),
            "key_id": key_id,
            "key_name": key_name,
            "endpoint": endpoint,
            "query": query,
            "prompts_returned": returned,
            "raw": raw,
        }
        # ASCII: a query may hold \x85 or \u2028, which str.splitlines() and other readers take
        # for line breaks, or a lone surrogate, which UTF-8 cannot encode. Escaped, one entry is one line.
        line = json.dumps(entry, ensure_ascii=True, default=str)
        with open(self.path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(line + "\n")
            handle.flush()

"""The audit log: one JSON line per response that returned raw prompt text."""

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

    def record(self, *, key_id: str, key_name: str, endpoint: str, query: Any, returned: int) -> None:
        line = json.dumps(
            {
                "time": time.time(),
                "key_id": key_id,
                "key_name": key_name,
                "endpoint": endpoint,
                "query": query,
                "prompts_returned": returned,
            },
            ensure_ascii=False,
            default=str,
        )
        with open(self.path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(line + "\n")
            handle.flush()

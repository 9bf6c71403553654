"""The audit log: one JSON line per response that carried prompt text or metadata (raw or masked).

An entry says who (key id and name), when, which endpoint, what was asked and how many
prompts left; never the text itself. Query text is kept as its SHA-256 and length only
(see api.disclosure.describe_text), so the log is no second copy of what analysts searched
for. The file is mode 600 and appended under an exclusive lock, shared by every worker.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Mapping
from pathlib import Path

from indexer.cluster_records import JSONValue
from indexer.private_files import append_private

AUDIT_FILE = "audit.jsonl"


class AuditLog:
    def __init__(self, path: Path):
        self.path = path

    def record(
        self, *, key_id: str, key_name: str, endpoint: str, query: Mapping[str, JSONValue], returned: int, raw: bool
    ) -> None:
        """Append one entry."""
        entry = {
            "time": time.time(),
            "key_id": key_id,
            "key_name": key_name,
            "endpoint": endpoint,
            "query": dict(query),
            "prompts_returned": returned,
            "raw": raw,
        }
        # ASCII: an id may hold \x85 or \u2028, which str.splitlines() and other readers take
        # for line breaks, or a lone surrogate, which UTF-8 cannot encode. Escaped, one entry is one line.
        line = json.dumps(entry, ensure_ascii=True, default=str)
        with append_private(self.path) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(line.encode("ascii") + b"\n")
            handle.flush()

"""The prompt record and the timestamp conventions shared by every stage."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

# Epoch seconds beyond this are almost surely milliseconds or garbage; refusing them
# keeps a unit mix-up from silently landing prompts in the year 50,000.
_MAX_EPOCH = 32503680000.0  # 3000-01-01


@dataclass(frozen=True)
class Prompt:
    """One prompt as sent to the model: raw text, who sent it and when."""

    id: str
    text: str
    account_id: str
    timestamp: float  # epoch seconds, UTC
    metadata: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def digest(self) -> str:
        """Digest of everything the record carries; equal digests mean re-ingest changes nothing.

        Cached: ingest asks for it several times per record (skip check, in-flight
        tracking, the store), and the JSON encoding was a visible part of bulk ingest.
        """
        body = json.dumps([self.text, self.account_id, self.timestamp, self.metadata], sort_keys=True, default=str)
        return hashlib.blake2b(body.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def parse_timestamp(value: Any) -> float:
    """Return epoch seconds for an ISO-8601 string or epoch number; raise ValueError otherwise."""
    if isinstance(value, datetime):  # Parquet and Arrow give real timestamps
        return _checked_epoch((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    if isinstance(value, bool):
        raise ValueError(f"timestamp must be ISO-8601 or epoch seconds, got {value!r}")
    if isinstance(value, (int, float)):
        return _checked_epoch(float(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            return _checked_epoch(float(text))
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"unparseable timestamp {value!r}; use ISO-8601 or epoch seconds") from None
        if parsed.tzinfo is None:  # naive times are taken as UTC, the log convention
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValueError(f"timestamp must be ISO-8601 or epoch seconds, got {type(value).__name__}")


def _checked_epoch(seconds: float) -> float:
    if not math.isfinite(seconds) or not 0 <= seconds < _MAX_EPOCH:
        raise ValueError(f"epoch seconds {seconds!r} out of range (1970..3000)")
    return seconds


def to_iso(seconds: float) -> str:
    """Format epoch seconds as an ISO-8601 UTC string ending in Z."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

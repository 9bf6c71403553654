"""The prompt record and the timestamp conventions shared by every stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

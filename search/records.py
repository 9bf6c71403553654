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
# keeps a unit mix-up from silently landing prompts in the year 50,000. The same range holds
# for ISO-8601 input: "9999-12-31T23:59:59-14:00" parses, but is year 10000 in UTC, which
# no reader can format back.
_MAX_EPOCH = 32503680000.0  # 3000-01-01
# Metadata is stored as JSON and served back; nesting deeper than this, or a record larger
# than this, is refused before it is stored (every later read would pay for it, or fail).
MAX_METADATA_DEPTH = 16
MAX_METADATA_BYTES = 64 * 1024


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
        return _checked_epoch(parsed.timestamp())
    raise ValueError(f"timestamp must be ISO-8601 or epoch seconds, got {type(value).__name__}")


def _checked_epoch(seconds: float) -> float:
    if not math.isfinite(seconds) or not 0 <= seconds < _MAX_EPOCH:
        raise ValueError(f"epoch seconds {seconds!r} out of range (1970..3000)")
    return seconds


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Return metadata if it is a JSON object we can store and serve back; raise ValueError otherwise."""
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a JSON object, got {type(metadata).__name__}")
    _check_json(metadata, 1)
    try:
        size = len(
            json.dumps(metadata, allow_nan=False, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        )
    except (ValueError, TypeError, UnicodeEncodeError) as err:
        raise ValueError(f"metadata is not plain JSON ({err})") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    return metadata


def _check_json(value: Any, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("metadata keys must be strings")
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("metadata holds NaN or infinity, which JSON cannot carry")
    # Anything else (a Parquet date, say) is stored as its str(), as the store has always done.


def check_prompt(prompt: Prompt) -> Prompt:
    """Raise ValueError unless every field of prompt can be stored and read back (run before any commit)."""
    for name in ("id", "text", "account_id"):
        value = getattr(prompt, name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"prompt {name} must be a non-empty string")
        if "\x00" in value:
            raise ValueError(f"prompt {name} contains a NUL byte")
    if isinstance(prompt.timestamp, bool) or not isinstance(prompt.timestamp, int | float):
        raise ValueError(f"prompt {prompt.id!r}: timestamp must be epoch seconds")
    _checked_epoch(float(prompt.timestamp))
    check_metadata(prompt.metadata)
    return prompt


def to_iso(seconds: float) -> str:
    """Format epoch seconds as an ISO-8601 UTC string ending in Z."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

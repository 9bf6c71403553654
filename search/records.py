"""The prompt record and the timestamp conventions shared by every stage."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

# Epoch seconds beyond this are almost surely milliseconds or garbage; refusing them
# keeps a unit mix-up from silently landing prompts in the year 50,000. The same range holds
# for ISO-8601 input: "9999-12-31T23:59:59-14:00" parses, but is year 10000 in UTC, which
# no reader can format back.
MAX_EPOCH = 32503680000.0  # 3000-01-01
# Metadata is stored as JSON and served back; nesting deeper than this, or a record larger
# than this, is refused before it is stored (every later read would pay for it, or fail).
MAX_METADATA_DEPTH = 16
MAX_METADATA_BYTES = 64 * 1024

# The longest prompt text promptsim takes, in characters: the file reader (indexer/reader.py) and
# the request contract (promptsim/contract.py) refuse longer ones: one prompt must not take a
# batch's memory or a page's time.
MAX_TEXT_CHARS = 100_000


@dataclass(frozen=True)
class Prompt:
    """One prompt as sent to the model: raw text, who sent it and when."""

    id: str
    text: str
    account_id: str
    timestamp: float  # epoch seconds, UTC
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Take the input forms every path takes; a wrong type fails here, not later at the store.

        id and account_id: a string, or an integer (kept as its decimal string, as CSV gives it);
        timestamp: anything parse_timestamp reads (ISO-8601, datetime, epoch number).
        """
        for name in ("id", "account_id"):
            value = getattr(self, name)
            if type(value) is not str:
                object.__setattr__(self, name, identifier(value, name))
        if type(self.text) is not str:
            raise ValueError(f"prompt text must be a string, got {type(self.text).__name__}")
        if type(self.timestamp) is not float:  # the readers give floats: nothing to do for them
            object.__setattr__(self, "timestamp", parse_timestamp(self.timestamp))
        if self.metadata is None:
            object.__setattr__(self, "metadata", {})

    @cached_property
    def digest(self) -> str:
        """Digest of everything the record carries; equal digests mean re-ingest changes nothing.

        Cached: ingest asks for it several times per record (skip check, in-flight
        tracking, the store), and the JSON encoding was a visible part of bulk ingest.
        """
        body = json.dumps([self.text, self.account_id, self.timestamp, self.metadata], sort_keys=True, default=str)
        return hashlib.blake2b(body.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
# Epoch numbers in "auto" unit: below 1e11 they are seconds, below 1e14 milliseconds, below 1e17
# microseconds, else nanoseconds. The decades do not overlap for any time after March 1973 (the
# seconds range ends at year 3000, 3.25e10; milliseconds start at 1e11, 1973-03-03), so a log in
# any of the four units reads right without being told. Each bound is (unit, lowest, highest).
AUTO_RANGES = tuple(
    (unit, low, MAX_EPOCH * TIME_UNITS[unit]) for unit, low in (("s", 0.0), ("ms", 1e11), ("us", 1e14), ("ns", 1e17))
)
_DAY = r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
_YEAR = r"(?:197[1-9]|19[89]\d|2[0-8]\d\d|29[0-8]\d|299[0-8])"
_LEAP_DAY = r"(?:19(?:7[26]|8[048]|9[26])|2\d(?:0[48]|[2468][048]|[13579][26])|2[048]00)-02-29"
_CLOCK = r"(?:[Tt ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?)?"
_ZONE = r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?"
# The one ISO-8601 grammar every path accepts (the readers, the HTTP schema, --since/--until):
# a date, optionally a time (T or a space between), optionally Z or an offset. No zone means UTC.
# Years 1971-2998, so every offset keeps the moment inside 1970..3000.
ISO_PATTERN = rf"^(?:{_YEAR}-{_DAY}|{_LEAP_DAY}){_CLOCK}{_ZONE}$"
_ISO = re.compile(ISO_PATTERN)


def parse_timestamp(value: Any, unit: str = "auto") -> float:
    """Return epoch seconds (UTC) for an ISO-8601 string, a datetime or an epoch number.

    Numbers (and numeric strings, as CSV gives them) are in unit: "s", "ms", "us", "ns", or
    "auto", which tells them apart by magnitude (see AUTO_RANGES). ISO-8601 without a zone is
    taken as UTC, the convention of server logs. Raises ValueError saying what was expected.

    >>> parse_timestamp("2026-11-20T10:00:00Z"), parse_timestamp("2026-11-20 10:00:00")
    (1795168800.0, 1795168800.0)
    >>> parse_timestamp(1795168800), parse_timestamp(1795168800000), parse_timestamp("1795168800000")
    (1795168800.0, 1795168800.0, 1795168800.0)
    """
    if isinstance(value, datetime):  # Parquet and Arrow give real timestamps
        return _checked_epoch((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        kind = "a boolean" if isinstance(value, bool) else "missing" if value is None else type(value).__name__
        raise ValueError(f"timestamp must be ISO-8601 or an epoch number, got {kind}")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return _parse_iso(text, value)
        return epoch_seconds(number, unit)
    return epoch_seconds(float(value), unit)


def epoch_seconds(number: float, unit: str = "auto") -> float:
    """An epoch number in unit (or told apart by magnitude, "auto") as seconds; ValueError out of 1970..3000."""
    if not math.isfinite(number):
        raise ValueError(f"epoch time {number!r} is not a number")
    if unit == "auto":
        unit = next((u for u, low, _ in reversed(AUTO_RANGES) if number >= low), "s")
    if unit not in TIME_UNITS:
        raise ValueError(f"time unit {unit!r} unknown; use one of auto, {', '.join(TIME_UNITS)}")
    seconds = number / TIME_UNITS[unit]
    if not 0 <= seconds < MAX_EPOCH:
        raise ValueError(
            f"epoch time {number:.15g} read as {_UNIT_NAMES[unit]} is out of range (years 1970..3000); "
            "pass the unit your log uses (--time-unit s|ms|us|ns)"
        )
    return seconds


_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _parse_iso(text: str, given: str) -> float:
    if not _ISO.match(text):
        raise ValueError(
            f"unparseable timestamp {given!r}; use ISO-8601 (2026-11-20T10:00:00Z; no zone means UTC) "
            "or an epoch number (seconds, ms, us or ns)"
        )
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:  # naive times are taken as UTC, the log convention
        moment = moment.replace(tzinfo=UTC)
    return _checked_epoch(moment.timestamp())


def _checked_epoch(seconds: float) -> float:
    if not math.isfinite(seconds) or not 0 <= seconds < MAX_EPOCH:
        raise ValueError(f"epoch seconds {seconds!r} out of range (1970..3000)")
    return seconds


def identifier(value: Any, name: str = "id") -> str:
    """An id or account id as stored: a string as given, an integer as its decimal string; ValueError otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    kind = "missing" if value is None else type(value).__name__
    raise ValueError(f"'{name}' must be a string (or an integer), got {kind}")


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

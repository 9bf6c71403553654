"""Retention: purge prompts past the index's retention period from every structure."""

from __future__ import annotations

import re
import time

from search.index import PromptIndex

from .erasure import log_cutoff
from .snapshots import expire_snapshots

_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_age(text: str) -> float:
    """'2w', '30d', '12h', '90m', '45s' or a number of days -> days."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([wdhms]?)\s*", text)
    if not match:
        raise ValueError(f"age {text!r} not understood; use e.g. 2w, 30d, 12h, 90m or 45s")
    return float(match.group(1)) * _UNITS[match.group(2) or "d"] / 86_400


def purge(index: PromptIndex, older_than_days: float | None = None, *, now: float | None = None) -> dict[str, float]:
    """Delete prompts older than the given age (default: the index's retention); checkpoint."""
    days = older_than_days if older_than_days is not None else index.manifest.settings.retention_days
    if days is None:
        raise ValueError("no retention period: pass --older-than AGE or create the index with --retention-days")
    cutoff = (now if now is not None else time.time()) - days * 86_400
    log_cutoff(index.path, cutoff)  # first: a restore never brings these prompts back, even if this fails
    removed = index.purge(cutoff)
    index.checkpoint()
    snapshots = expire_snapshots(index.path, cutoff)
    return {"removed": removed, "cutoff": cutoff, "older_than_days": days, "snapshots_expired": snapshots}

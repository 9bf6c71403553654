"""The edges' side of verdicts: the one place a verdict is recorded (CLI, API, UI), audited and counted.

The verdict itself is indexer/verdicts.py's; here it gets its audit entry (who, which cluster,
what, the note's digest: the note is kept in DIR/triage.sqlite) and the Prometheus counters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from indexer.cluster_records import JSONValue
from indexer.triage_store import VerdictRecord

from .audit import AUDIT_FILE, AuditLog
from .disclosure import describe_text
from .keys import ApiKey


class TriageMetrics:
    """Counters for verdicts, watchlist hits and alert deliveries (one set per worker, like the rest)."""

    def __init__(self, registry: CollectorRegistry):
        self.verdicts = Counter("promptsim_verdicts", "Analyst verdicts recorded", ["verdict"], registry=registry)
        self.watch_hits = Counter(
            "promptsim_watchlist_hits",
            "Prompts and queries that matched a confirmed family",
            ["source"],
            registry=registry,
        )
        self.alert_deliveries = Counter("promptsim_alert_deliveries", "Alerts the webhook accepted", registry=registry)
        self.alert_failures = Counter(
            "promptsim_alert_failures", "Alert delivery attempts that failed (each is retried)", registry=registry
        )


def record(
    index_dir: Path,
    who: ApiKey,
    endpoint: str,
    cluster_id: str,
    make: Callable[[], VerdictRecord | None],
    metrics: TriageMetrics | None = None,
) -> VerdictRecord | None:
    """Run make (which records the verdict), then audit and count it; None when there was no such cluster."""
    made = make()
    if made is None:
        return None
    query: dict[str, JSONValue] = {
        "cluster_id": cluster_id,
        "verdict": made.verdict,
        "verdict_id": made.verdict_id,
        "family_id": made.family_id,
    }
    AuditLog(index_dir / AUDIT_FILE).record(
        key_id=who.key_id,
        key_name=who.name,
        endpoint=endpoint,
        query={**query, **{f"note_{k}": v for k, v in describe_text(made.note).items()}},
        returned=0,
        raw=who.raw,
    )
    if metrics is not None:
        metrics.verdicts.labels(made.verdict).inc()
    return made

"""SIEM export: flagged campaigns and the accounts in them as OCSF Detection Findings (or plain JSON lines).

OCSF 1.1.0, class Detection Finding (`class_uid` 2004, category Findings): one finding per
flagged campaign of the last dedup run (uid = its cluster id) and one per account in one
(uid = `account:<id>`). Times are epoch milliseconds; promptsim's own facts sit in `unmapped`.
A campaign's template is prompt text: it goes through the disclosure function like any
response (masked unless the export is raw; audit-logged either way).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from indexer.campaigns import account_records
from indexer.cluster_records import Cluster
from indexer.cluster_store import ClusterStore
from indexer.private_files import write_private
from search.index import PromptIndex
from search.manifest import STORE
from search.records import parse_timestamp

from .audit import AUDIT_FILE, AuditLog
from .disclosure import OPERATOR, Disclosure

OCSF_VERSION = "1.1.0"
DETECTION_FINDING, FINDINGS = 2004, 2
CREATE = 1
EXPORTER = replace(OPERATOR, name="cli export", scopes=("read",))  # no raw: the SIEM gets masked text


def findings(index: PromptIndex, *, since: float | None, fmt: str, raw: bool) -> Iterator[dict[str, Any]]:
    """The export's records, campaigns first, then accounts (fmt: 'ocsf' or 'jsonl')."""
    store = ClusterStore(index.path / STORE)
    try:
        flagged = [c.cluster for c in store.clusters(flagged_only=True)]
    finally:
        store.close()
    flagged = [c for c in flagged if since is None or parse_timestamp(c.last_seen) >= since]
    who = OPERATOR if raw else EXPORTER
    query = {"since": since, "format": fmt, "raw": raw, "campaigns": len(flagged)}
    shown = Disclosure(AuditLog(index.path / AUDIT_FILE)).reveal(who, "cli export", query, flagged)
    exported = {c.cluster_id for c in shown}
    accounts = [a for a in account_records(index) if any(c["cluster_id"] in exported for c in a["clusters"])]
    now = int(time.time() * 1000)
    for cluster in shown:
        yield campaign_finding(cluster, now) if fmt == "ocsf" else {"kind": "campaign", **_campaign_facts(cluster)}
    for account in accounts:
        yield account_finding(account, now) if fmt == "ocsf" else {"kind": "account", **account}


def campaign_finding(cluster: Cluster, now_ms: int) -> dict[str, Any]:
    """One flagged campaign as an OCSF Detection Finding."""
    verdict = cluster.features.get("verdict")
    confirmed = isinstance(verdict, dict) and verdict.get("verdict") == "confirmed"
    severity = 4 if confirmed or cluster.campaign_score >= 0.8 else 3
    why = str(cluster.features.get("why", ""))
    return {
        **_base(now_ms, severity, f"campaign:{cluster.cluster_id}"),
        "message": f"Campaign {cluster.cluster_id}: {cluster.size} prompts from {cluster.accounts} accounts",
        "status_id": 2 if confirmed else 1,
        "status": "In Progress" if confirmed else "New",
        "confidence_score": round(100 * cluster.campaign_score),
        "start_time": _ms(cluster.first_seen),
        "end_time": _ms(cluster.last_seen),
        "finding_info": {
            "uid": cluster.cluster_id,
            "title": f"Coordinated prompt campaign {cluster.cluster_id} ({cluster.change or 'current'})",
            "desc": why,
            "types": ["LLM distillation campaign"],
            "created_time": now_ms,
            "first_seen_time": _ms(cluster.first_seen),
            "last_seen_time": _ms(cluster.last_seen),
            "analytic": {"name": "promptsim campaign score", "type_id": 1, "type": "Rule", "uid": "campaign_score"},
        },
        "resources": [
            {"uid": str(a.get("account_id")), "type": "account"}
            for a in _list(cluster.features.get("top_accounts"))
            if isinstance(a, dict)
        ],
        "unmapped": _campaign_facts(cluster),
    }


def account_finding(account: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """One account in flagged campaigns as an OCSF Detection Finding."""
    share = float(account["flagged_share"])
    return {
        **_base(now_ms, 4 if share >= 0.5 else 3, f"account:{account['account_id']}"),
        "message": f"Account {account['account_id']} sent {account['flagged_prompts']} prompts in flagged campaigns",
        "status_id": 1,
        "status": "New",
        "confidence_score": round(100 * share),
        "finding_info": {
            "uid": f"account:{account['account_id']}",
            "title": f"Account in {len(account['clusters'])} flagged campaigns",
            "desc": f"{share:.0%} of its {account['prompts']} prompts sit in flagged campaigns; "
            f"{account['linked_accounts']} other accounts share them",
            "types": ["LLM distillation account"],
            "created_time": now_ms,
            "related_events": [{"uid": c["cluster_id"], "type": "campaign"} for c in account["clusters"]],
            "analytic": {"name": "promptsim campaign accounts", "type_id": 1, "type": "Rule", "uid": "accounts"},
        },
        "resources": [{"uid": account["account_id"], "type": "account"}],
        "unmapped": account,
    }


def _base(now_ms: int, severity_id: int, uid: str) -> dict[str, Any]:
    return {
        "class_uid": DETECTION_FINDING,
        "class_name": "Detection Finding",
        "category_uid": FINDINGS,
        "category_name": "Findings",
        "activity_id": CREATE,
        "activity_name": "Create",
        "type_uid": DETECTION_FINDING * 100 + CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": {3: "Medium", 4: "High"}[severity_id],
        "is_alert": True,
        "time": now_ms,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": uid,
            "product": {"name": "promptsim", "vendor_name": "promptsim", "version": _version()},
        },
    }


def _campaign_facts(cluster: Cluster) -> dict[str, Any]:
    features = cluster.features
    return {
        "cluster_id": cluster.cluster_id,
        "size": cluster.size,
        "accounts": cluster.accounts,
        "campaign_score": cluster.campaign_score,
        "change": cluster.change,
        "first_seen": cluster.first_seen,
        "last_seen": cluster.last_seen,
        "template": cluster.template,
        "why": features.get("why"),
        "verdict": features.get("verdict"),
        "previous_verdict": features.get("previous_verdict"),
    }


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _ms(iso: str) -> int:
    return int(parse_timestamp(iso) * 1000)


def _version() -> str:
    try:
        return version("promptsim")
    except PackageNotFoundError:
        return "0"


def write_lines(records: Iterator[dict[str, Any]], out: Path | None) -> int:
    """Write records as JSON lines to out (mode 600, atomically) or stdout; how many."""
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    if out is None:
        sys.stdout.write("".join(lines))
        return len(lines)
    tmp = out.with_name(f".{out.name}.tmp")
    write_private(tmp, "".join(lines).encode("utf-8"))
    tmp.replace(out)
    return len(lines)

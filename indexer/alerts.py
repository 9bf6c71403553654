"""Alert payloads: a flagged campaign, a minute's watchlist hits, a test. JSON with a Slack-compatible `text`.

Each payload has a deterministic `id` (the outbox keys on it, so a re-run or a restart never
queues one twice, and a receiver drops a repeat by it). Alerts carry ids, counts, scores and
the `why` sentence, never prompt text: whoever reads the channel looks the prompts up in the UI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search.records import to_iso

MAX_IDS = 100  # prompt and account ids listed per watched family in one batch


def campaign_alert(cluster: dict[str, Any], index_name: str) -> dict[str, Any]:
    """A new, grown or regrown flagged campaign of a dedup run."""
    cid, change = cluster["cluster_id"], cluster["change"]
    features = cluster.get("features") or {}
    previous = features.get("previous_verdict")
    text = (
        f"promptsim [{index_name}]: {change} campaign {cid}: {cluster['size']} prompts from "
        f"{cluster['accounts']} accounts, score {cluster['campaign_score']:.2f}, last seen {cluster['last_seen']}."
    )
    if previous:
        text += f" Dismissed before by {previous['by']} ({previous['at'][:10]}): {previous['note']}"
    return {
        "id": f"campaign:{cid}:{change}:{cluster['size']}:{cluster['last_seen']}",
        "kind": "campaign",
        "text": text,
        "index": index_name,
        "campaign": {
            "cluster_id": cid,
            "change": change,
            "size": cluster["size"],
            "accounts": cluster["accounts"],
            "campaign_score": cluster["campaign_score"],
            "first_seen": cluster["first_seen"],
            "last_seen": cluster["last_seen"],
            "why": features.get("why", ""),
            "verdict": features.get("verdict"),
            "previous_verdict": previous,
        },
    }


def watch_alert(
    batch: int, hits: Sequence[tuple[str, str, str, float, float]], entries: dict[str, dict[str, Any]], index_name: str
) -> dict[str, Any]:
    """One batch of watchlist hits (family_id, prompt_id, account_id, at, similarity), grouped by family.

    entries: family id -> {"note", "by", "accounts" (known at the verdict)} of the watch entries.
    """
    grouped: dict[str, list[tuple[str, str, float, float]]] = {}
    for family_id, prompt_id, account_id, at, similarity in hits:
        grouped.setdefault(family_id, []).append((prompt_id, account_id, at, similarity))
    families: list[dict[str, Any]] = []
    for family_id, found in sorted(grouped.items()):
        entry = entries.get(family_id, {})
        accounts = sorted({a for _, a, _, _ in found})
        known = set(entry.get("accounts", ()))
        families.append(
            {
                "watch_id": family_id,
                "prompts": len(found),
                "accounts": accounts[:MAX_IDS],
                "new_accounts": [a for a in accounts if a not in known][:MAX_IDS],
                "prompt_ids": [p for p, _, _, _ in found][:MAX_IDS],
                "first_at": to_iso(min(t for _, _, t, _ in found)),
                "last_at": to_iso(max(t for _, _, t, _ in found)),
                "best_similarity": round(max(s for _, _, _, s in found), 4),
                "confirmed_by": entry.get("by"),
                "note": entry.get("note"),
            }
        )
    lines = [
        f"- {f['watch_id']}: {f['prompts']} prompts from {len(f['accounts'])} accounts "
        f"({len(f['new_accounts'])} new); confirmed by {f['confirmed_by']}: {f['note']}"
        for f in families
    ]
    text = f"promptsim [{index_name}]: {len(hits)} prompts matched confirmed campaigns on the watchlist\n" + "\n".join(
        lines
    )
    first = int(min(at for _, _, _, at, _ in hits)) if hits else 0
    return {"id": f"watch:{batch}:{first}", "kind": "watchlist", "text": text, "index": index_name, "watch": families}


def probe_alert(index_name: str, nonce: str) -> dict[str, Any]:
    """What `promptsim alerts test` sends."""
    return {
        "id": f"test:{nonce}",
        "kind": "test",
        "text": f"promptsim [{index_name}]: test alert; if the signature verifies, alerts will arrive here.",
        "index": index_name,
    }

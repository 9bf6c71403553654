"""The nightly job around dedup: incremental runs, stable ids, clusters.jsonl and accounts.jsonl."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from search.embedding import Encoder
from search.family_index import FAMILIES_FILE
from search.index import PromptIndex
from search.manifest import STORE

from .cluster_records import split_texts
from .cluster_store import ClusterStore
from .dedup import DedupResult, DedupSettings, Source, run_dedup
from .families import family_index
from .verdicts import TriageSettings, judge_run

logger = logging.getLogger(__name__)


def nightly(
    index: PromptIndex,
    *,
    since: float | None = None,
    until: float | None = None,
    settings: DedupSettings = DedupSettings(),
    incremental: bool = False,
    family_encoder: Encoder | None = None,
    triage: TriageSettings = TriageSettings(),
    history: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Cluster the window, keep ids stable against the last run, save it; returns (clusters, stats).

    incremental: seed with the last run's clusters and look for edges of prompts added since
    it only — the cheap hourly path. A full run (the default) recomputes every edge.
    family_encoder: compares wrappers by meaning (search/family_encoder.py); loaded when None
    and families are on.
    triage: how analysts' verdicts follow families into this run, and where its alerts go.
    history: cluster the window's prompts with their nearest siblings from the whole index
    (indexer/history.py; the index must be open with its structures).
    """
    if family_encoder is None and settings.families:
        from search.family_encoder import load_family_encoder

        family_encoder = load_family_encoder()
    store = ClusterStore(index.path / STORE)
    try:
        last = store.last_run()
        previous = new_rows = None
        if incremental and last is not None:
            previous = list(store.previous_members().values())
            new_rows = index.store.rows_after(int(last["last_row"]))
        rows = window = None
        if history:
            from .history import touching, with_history

            cosine = settings.in_raw_cosines(index.cosine_scale).cosine
            rows, window = with_history(index, since, until, cosine=cosine, progress=True)
        result = run_dedup(
            Source.of(index),
            since=since,
            until=until,
            settings=settings,
            previous=previous,
            new_rows=new_rows,
            encoder=family_encoder,
            rows=rows,
        )
        if rows is not None and window is not None:
            result.clusters = touching(result.clusters, window)
            result.stats["clusters"] = len(result.clusters)
            result.stats["flagged"] = sum(c["flagged"] for c in result.clusters)
            result.stats["history_siblings"] = len(rows) - len(window)  # the rest of "prompts" is the window's own
        return save_run(index, store, result, since=since, until=until, triage=triage)
    finally:
        store.close()


def save_run(
    index: PromptIndex,
    store: ClusterStore,
    result: DedupResult,
    *,
    since: float | None,
    until: float | None,
    triage: TriageSettings = TriageSettings(),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Keep a finished dedup run (stable ids, change against the last run, analysts' verdicts applied);
    returns (clusters, stats)."""
    last_row = index.store.watermark().row
    judge = judge_run(index, result.families, result.stats, triage)
    store.save_run(result.clusters, since=since, until=until, last_row=last_row, stats=result.stats, judge=judge)
    save_families(index, result)
    flagged = [c for c in result.clusters if c["flagged"]]
    result.stats["campaigns_new"] = sum(c["change"] == "new" for c in flagged)
    result.stats["campaigns_grown"] = sum(c["change"] == "grown" for c in flagged)
    result.stats["campaigns_regrown"] = sum(c["change"] == "regrown" for c in flagged)
    return result.clusters, result.stats


def save_families(index: PromptIndex, result: DedupResult) -> None:
    """Keep the run's families for search (families.npz); a run without families removes a stale file."""
    found = None if result.families is None else family_index(result.families, result.clusters)
    if found is None:
        (index.path / FAMILIES_FILE).unlink(missing_ok=True)
    else:
        found.save(index.path)


def cluster_lines(index: PromptIndex, clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """clusters.jsonl records: the contract's fields, member prompt ids instead of rows.

    Prompt text sits in explicit fields only (template, variants, examples): variants that
    dedup left inside features are moved out.
    """
    ids = index.store.ids_of(np.concatenate([c["rows"] for c in clusters]) if clusters else [])
    lines = []
    for c in clusters:
        features, template, variants, examples = split_texts(c)
        body: dict[str, Any] = {
            "cluster_id": c["cluster_id"],
            "members": [ids[int(r)] for r in c["rows"] if int(r) in ids],
        }
        body.update({k: c[k] for k in _LINE_FIELDS if k in c})
        body.update(template=template, variants=variants, examples=examples, features=features)
        lines.append(body)
    return lines


_LINE_FIELDS = ("size", "accounts", "first_seen", "last_seen", "campaign_score", "flagged", "change")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records one JSON object per line, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def account_records(index: PromptIndex) -> list[dict[str, Any]]:
    """Per account in a flagged cluster: its clusters, its traffic share in them, and linked accounts."""
    store = ClusterStore(index.path / STORE)
    try:
        flagged = store.clusters(flagged_only=True)
    finally:
        store.close()
    rows = np.concatenate([c.rows for c in flagged]) if flagged else np.zeros(0, np.int64)
    owner = index.store.accounts_of(rows)
    totals = index.store.prompts_per_account(sorted(set(owner.values())))
    per_account: dict[str, dict[str, int]] = {}
    members: dict[str, set[str]] = {}
    for c in flagged:
        cid = c.cluster.cluster_id
        for r in c.rows.tolist():
            account = owner.get(int(r))
            if account is None:
                continue
            per_account.setdefault(account, {}).setdefault(cid, 0)
            per_account[account][cid] += 1
            members.setdefault(cid, set()).add(account)
    records = []
    for account, in_clusters in sorted(per_account.items()):
        linked = set().union(*(members[cid] for cid in in_clusters)) - {account}
        in_flagged = sum(in_clusters.values())
        records.append(
            {
                "account_id": account,
                "prompts": totals.get(account, 0),
                "flagged_prompts": in_flagged,
                "flagged_share": round(in_flagged / max(totals.get(account, 1), 1), 4),
                "clusters": [
                    {"cluster_id": cid, "prompts": n, "share": round(n / max(totals.get(account, 1), 1), 4)}
                    for cid, n in sorted(in_clusters.items(), key=lambda kv: -kv[1])
                ],
                "linked_accounts": len(linked),
                "linked_sample": sorted(linked)[:50],
            }
        )
    return records

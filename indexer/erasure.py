"""Erasures that outlive snapshots: every delete and purge is logged, and a restore applies them again.

A snapshot taken on Monday holds a prompt deleted on Tuesday. Restoring it on Wednesday must
not bring that prompt back, so deletes by id or account, and retention cutoffs, go to
DIR/erasures.jsonl (mode 600; ids and account ids only, never text), which lives outside
every snapshot and is replayed by indexer.snapshots.restore_snapshot.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Sequence
from pathlib import Path

from search.index import PromptIndex
from search.manifest import STORE
from search.store import PromptStore

from .private_files import append_private
from .triage_store import TRIAGE_DB, TriageStore

LEDGER = "erasures.jsonl"


def erase_ids(index: PromptIndex, ids: list[str]) -> int:
    """Delete prompts by id from every structure and log it; returns how many existed."""
    removed = index.delete_ids(ids)
    if removed:
        _log(index.path, {"ids": ids})
        _forget(index.path, prompt_ids=ids)
    return removed


def erase_account(index: PromptIndex, account_id: str) -> int:
    """Delete every prompt of an account from every structure and log it; returns how many."""
    removed = index.delete_account(account_id)
    if removed:
        _log(index.path, {"account": account_id})
        _forget(index.path, account_id=account_id)
    return removed


def log_cutoff(index_dir: Path, cutoff: float) -> None:
    """Log a retention purge: prompts older than cutoff stay gone after any restore."""
    _log(index_dir, {"before": cutoff})


def reapply_erasures(index_dir: Path, store_path: Path | None = None) -> int:
    """Apply every erasure logged in index_dir to its store, or to store_path (a restore's staged copy);
    returns prompts removed.

    Works on the store alone: the derived structures replay its deletions when next opened.
    """
    entries = _read(index_dir)
    if not entries:
        return 0
    store = PromptStore(store_path or index_dir / STORE)
    try:
        ids = [i for e in entries for i in e.get("ids", [])]
        removed = len(store.delete_ids(ids)) if ids else 0
        for account in {e["account"] for e in entries if "account" in e}:
            removed += len(store.delete_account(account))
        cutoffs = [float(e["before"]) for e in entries if "before" in e]
        if cutoffs:
            removed += len(store.delete_older_than(max(cutoffs)))
    finally:
        store.close()
    return removed


def _forget(index_dir: Path, *, prompt_ids: Sequence[str] = (), account_id: str | None = None) -> None:
    """The watchlist's own records of erased prompts and accounts go too (indexer/triage_store.py)."""
    if (index_dir / TRIAGE_DB).exists():
        with TriageStore(index_dir) as triage:
            triage.forget(prompt_ids=prompt_ids, account_id=account_id)


def _log(index_dir: Path, entry: dict[str, object]) -> None:
    with append_private(index_dir / LEDGER) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps(entry, ensure_ascii=True).encode() + b"\n")
        handle.flush()


def _read(index_dir: Path) -> list[dict[str, object]]:
    path = index_dir / LEDGER
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]

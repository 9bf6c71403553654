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
from typing import Any

from search.index import PromptIndex
from search.manifest import STORE
from search.store import PromptStore

from .private_files import append_private
from .triage_store import TRIAGE_DB, TriageStore

LEDGER = "erasures.jsonl"


def erase_ids(index: PromptIndex, ids: list[str]) -> int:
    """Log the erasure, then delete prompts by id from every structure; returns how many existed.

    Logged first (as purges are): when the log cannot be written (a full disk), nothing is
    deleted and the error says so truthfully; deleting first left a prompt gone from the store
    but not in the log, which the next restore brought back.
    """
    stored = list(index.store.digests(ids))
    if not stored:
        return 0
    _log(index.path, {"ids": stored})
    removed = index.delete_ids(stored)
    _forget(index.path, prompt_ids=stored)
    return removed


def erase_account(index: PromptIndex, account_id: str) -> int:
    """Log the erasure, then delete every prompt of an account from every structure; returns how many."""
    if not index.store.prompts_per_account([account_id]).get(account_id):
        return 0
    _log(index.path, {"account": account_id})
    removed = index.delete_account(account_id)
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


def _read(index_dir: Path) -> list[dict[str, Any]]:
    path = index_dir / LEDGER
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]

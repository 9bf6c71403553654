"""The last step of a snapshot restore: moving staged, verified files into place, resumably.

indexer/snapshots.py verifies a snapshot into DIR/.restore and writes READY (the plan: what
to put in place, what to remove) under the write lock; from then on a restore only rolls
forward. finish_restore does that, and PromptIndex.open calls finish_pending_restore, so a
restore killed at any point is completed by whichever process opens the index next.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .lock import write_lock
from .manifest import RESTORE_DIR, RESTORE_READY, STORE
from .snapshot import fsync_dir


def finish_restore(path: Path) -> bool:
    """Move a staged, verified snapshot into place; call with the write lock held.

    Idempotent, so a restore killed at any point is completed by the next open: the plan in
    READY names what to delete, files still in the staging directory are moved with
    os.replace (atomic each), and the store goes last.
    """
    staging = path / RESTORE_DIR
    ready = staging / RESTORE_READY
    if not ready.exists():
        return False
    plan = json.loads(ready.read_text())
    staged = {name for name in plan["files"] if (staging / name).exists()}
    for name in plan["remove"]:
        if name not in plan["files"]:
            (path / name).unlink(missing_ok=True)
    for name in sorted(staged, key=lambda n: n == STORE):
        if name == STORE:  # the old store's journal must not be applied to the new one
            for suffix in ("-wal", "-shm"):
                (path / f"{STORE}{suffix}").unlink(missing_ok=True)
        os.replace(staging / name, path / name)
    fsync_dir(path)
    ready.unlink()
    staging.rmdir()
    return True


def finish_pending_restore(path: Path, *, locked: bool) -> None:
    """Complete a restore that was interrupted, or wait for one in progress to finish."""
    if not (path / RESTORE_DIR / RESTORE_READY).exists():
        return
    if locked:
        finish_restore(path)
        return
    with write_lock(path):
        finish_restore(path)

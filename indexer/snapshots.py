"""Consistent point-in-time snapshots of an index directory, and their verified restore.

A snapshot is a tar file: SNAPSHOT.json (format, time, sha256 and size of every member),
then the manifest, the derived structures and keys, then the store. The derived files are
copied *before* the store is backed up (with SQLite's online backup API, which gives a
consistent copy while writers go on), so the store copy is never older than what they
reflect, and opening the restored index replays the difference.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from search.errors import IndexCorrupt
from search.index import finish_restore, write_lock
from search.manifest import KEYS, LEXICAL, LOCK, MANIFEST, RESTORE_DIR, RESTORE_READY, STORE, VECTORS, WINDOWS
from search.snapshot import fsync_dir

FORMAT = 1
_DERIVED = (MANIFEST, VECTORS, LEXICAL, WINDOWS, KEYS)


def create_snapshot(index_dir: Path, out: Path) -> dict[str, Any]:
    """Write a snapshot of index_dir to out (atomically); returns its description."""
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        staged = Path(tmp)
        members = []
        for name in _DERIVED:
            if (index_dir / name).exists():
                shutil.copy2(index_dir / name, staged / name)
                members.append(name)
        source = sqlite3.connect(f"file:{index_dir / STORE}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(staged / STORE)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        members.append(STORE)
        description = {
            "format": FORMAT,
            "created_at": time.time(),
            "source": str(index_dir),
            "files": {m: {"sha256": _sha256(staged / m), "bytes": (staged / m).stat().st_size} for m in members},
        }
        partial = out.with_name(f".{out.name}.partial")
        with tarfile.open(partial, "w") as tar:
            header = json.dumps(description, indent=2).encode()
            info = tarfile.TarInfo("SNAPSHOT.json")
            info.size = len(header)
            tar.addfile(info, io.BytesIO(header))
            for m in members:
                tar.add(staged / m, arcname=m)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        partial.replace(out)
    return {**description, "file": str(out), "sha256": _sha256(out)}


def restore_snapshot(
    snapshot: Path,
    index_dir: Path,
    *,
    force: bool = False,
    keep: tuple[str, ...] = (),
    lock_timeout: float = 30.0,
) -> dict[str, Any]:
    """Verify every checksum, then put the snapshot's files in index_dir (empty unless force).

    The files are verified in a staging directory inside index_dir, then moved into place
    under the write lock; a restore killed half way is completed by the next open (see
    search.index.finish_restore). keep names files of the live index to leave as they are
    (the API keeps its keys, so an admin cannot lock everyone out by restoring).
    """
    if index_dir.exists() and _has_index_files(index_dir) and not force:
        raise ValueError(f"{index_dir} is not empty; restore into a new directory or pass --force")
    index_dir.mkdir(parents=True, exist_ok=True)
    with write_lock(index_dir, lock_timeout):
        finish_restore(index_dir)  # an earlier, interrupted restore goes first
        staging = index_dir / RESTORE_DIR
        shutil.rmtree(staging, ignore_errors=True)  # staged but never marked ready: start over
        staging.mkdir()
        description = _extract_verified(snapshot, staging)
        files = [name for name in description["files"] if name not in keep]
        for name in description["files"]:
            if name in keep:
                (staging / name).unlink()
        (staging / "SNAPSHOT.json").unlink()
        plan = {"snapshot": str(snapshot), "files": files, "remove": [n for n in (*_DERIVED, STORE) if n not in keep]}
        ready = staging / RESTORE_READY
        with open(ready, "w") as handle:
            handle.write(json.dumps(plan))
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(staging)
        finish_restore(index_dir)
    return description


def _has_index_files(index_dir: Path) -> bool:
    return any(p.name != LOCK for p in index_dir.iterdir())


def _extract_verified(snapshot: Path, staging: Path) -> dict[str, Any]:
    """Unpack snapshot into staging and check every member against SNAPSHOT.json."""
    try:
        with tarfile.open(snapshot, "r") as tar:
            names = tar.getnames()
            if names[:1] != ["SNAPSHOT.json"] or any("/" in n or n.startswith(".") for n in names):
                raise IndexCorrupt(f"{snapshot} is not a promptsim snapshot")
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise IndexCorrupt(f"{snapshot} is unreadable or truncated ({err})") from err
    description = json.loads((staging / "SNAPSHOT.json").read_text())
    for name, expected in description["files"].items():
        path = staging / name
        if not path.exists() or _sha256(path) != expected["sha256"]:
            raise IndexCorrupt(f"{snapshot}: {name} fails its checksum; the snapshot is damaged")
    return description


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

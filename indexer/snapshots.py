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
from search.manifest import LEXICAL, MANIFEST, STORE, VECTORS, WINDOWS

FORMAT = 1
_DERIVED = (MANIFEST, VECTORS, LEXICAL, WINDOWS, "keys.json")


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


def restore_snapshot(snapshot: Path, index_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Verify every checksum, then put the snapshot's files in index_dir (empty unless force)."""
    if index_dir.exists() and any(index_dir.iterdir()) and not force:
        raise ValueError(f"{index_dir} is not empty; restore into a new directory or pass --force")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        try:
            with tarfile.open(snapshot, "r") as tar:
                names = tar.getnames()
                if names[:1] != ["SNAPSHOT.json"] or any("/" in n or n.startswith(".") for n in names):
                    raise IndexCorrupt(f"{snapshot} is not a promptsim snapshot")
                tar.extractall(staged, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise IndexCorrupt(f"{snapshot} is unreadable or truncated ({err})") from err
        description = json.loads((staged / "SNAPSHOT.json").read_text())
        for name, expected in description["files"].items():
            path = staged / name
            if not path.exists() or _sha256(path) != expected["sha256"]:
                raise IndexCorrupt(f"{snapshot}: {name} fails its checksum; the snapshot is damaged")
        index_dir.mkdir(parents=True, exist_ok=True)
        for name in (*_DERIVED, STORE):
            for suffix in ("", "-wal", "-shm"):
                (index_dir / f"{name}{suffix}").unlink(missing_ok=True)
        for name in description["files"]:
            shutil.move(str(staged / name), index_dir / name)
    return description


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

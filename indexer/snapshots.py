"""Consistent point-in-time snapshots of an index directory, authenticated, and their verified restore.

A snapshot is a tar file: SNAPSHOT.json (format, time, sha256 and size of every member),
SNAPSHOT.hmac (HMAC-SHA256 of SNAPSHOT.json under the index's snapshot key), then the
manifest and the derived structures, then the store. The derived files are copied *before*
the store is backed up (with SQLite's online backup API, which gives a consistent copy while
writers go on), so the store copy is never older than what they reflect, and opening the
restored index replays the difference.

What a snapshot proves: that these bytes were written by a holder of the snapshot key
(DIR/snapshot.key, never inside a snapshot). A checksum stored beside the files only
catches damage; anyone can recompute it. Access control is not index data: keys, the
session secret, sessions and rate limits are never in a snapshot, and a restore never
touches them. Prompts erased after a snapshot was taken stay erased when it is restored
(indexer/erasure.py).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from search.errors import IndexCorrupt, IndexMismatch
from search.family_index import FAMILIES_FILE
from search.lock import write_lock
from search.manifest import LOCK, LSH, MANIFEST, RESTORE_DIR, RESTORE_READY, STORE, VECTORS, WINDOW_LSH
from search.restore import finish_restore
from search.snapshot import fsync_dir

from .erasure import reapply_erasures
from .private_files import create_private, write_private

FORMAT = 4  # 4: the index files of index format 3 (band tables in lsh.npz, windows.npz; search/manifest.py)
KEY_FILE = "snapshot.key"
SNAPSHOTS_DIR = "snapshots"
DESCRIPTION = "SNAPSHOT.json"
SIGNATURE = "SNAPSHOT.hmac"
_DERIVED = (MANIFEST, VECTORS, LSH, WINDOW_LSH, FAMILIES_FILE)  # families.npz: the last dedup run's, if any
MEMBERS = frozenset((*_DERIVED, STORE))  # the only file names a snapshot may hold, besides its header
_KEY_BYTES = 32


def snapshot_key(index_dir: Path, *, create: bool = False) -> bytes:
    """The index's snapshot key (made on first use with create=True); refuses an empty or short key."""
    path = index_dir / KEY_FILE
    if create and not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            write_private(tmp, secrets.token_bytes(_KEY_BYTES))
            os.link(tmp, path)  # whole or not at all; if another process made one first, use theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)  # also when a full disk refused it
    return read_key(path)


def read_key(path: Path) -> bytes:
    """A snapshot key from its file, or ValueError saying how to get a usable one."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(
            f"no snapshot key at {path}; snapshots are signed with the source index's snapshot.key: "
            "pass --key-file SOURCE_INDEX/snapshot.key"
        ) from None
    if len(key) < _KEY_BYTES:
        raise ValueError(f"{path} holds {len(key)} bytes; a snapshot key needs {_KEY_BYTES} (delete it to make one)")
    return key


def create_snapshot(index_dir: Path, out: Path) -> dict[str, Any]:
    """Write a signed snapshot of index_dir to out (atomically, mode 600); returns its description."""
    key = snapshot_key(index_dir, create=True)
    folder = out.parent if out.parent.exists() else None
    if folder is not None:
        _remove_leftovers(folder)
    with tempfile.TemporaryDirectory(prefix=f".staging-{os.getpid()}-", dir=folder) as tmp:
        staged = Path(tmp)
        members = _stage(index_dir, staged)
        description = {
            "format": FORMAT,
            "created_at": time.time(),
            "source": str(index_dir),
            "files": {m: {"sha256": _sha256(staged / m), "bytes": (staged / m).stat().st_size} for m in members},
        }
        header = json.dumps(description, indent=2).encode()
        partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
        with create_private(partial) as handle, tarfile.open(fileobj=handle, mode="w") as tar:
            _add_bytes(tar, DESCRIPTION, header)
            _add_bytes(tar, SIGNATURE, _sign(key, header).encode())
            for m in members:
                tar.add(staged / m, arcname=m)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        partial.replace(out)
    return {**description, "file": str(out), "sha256": _sha256(out)}


def _remove_leftovers(folder: Path) -> None:
    """Remove what a snapshot killed half way left in folder: its staging copy and its partial file.

    They hold copies of the store (prompts), which neither retention nor erasure reaches; the
    writer's pid is in each name, so only a dead writer's are removed.
    """
    for entry in folder.glob(".*"):
        match = re.fullmatch(r"\.(?:staging-(\d+)-.*|.*\.partial-(\d+))", entry.name)
        if match is None or _alive(int(match.group(1) or match.group(2))):
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stage(index_dir: Path, staged: Path) -> list[str]:
    """Copy the derived files, then back up the store (in that order: see the module docstring)."""
    members = []
    for name in _DERIVED:
        if (index_dir / name).exists():
            shutil.copyfile(index_dir / name, staged / name)
            members.append(name)
    source = sqlite3.connect(f"file:{index_dir / STORE}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(staged / STORE)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return [*members, STORE]


def restore_snapshot(
    snapshot: Path,
    index_dir: Path,
    *,
    force: bool = False,
    key_file: Path | None = None,
    lock_timeout: float = 30.0,
) -> dict[str, Any]:
    """Verify the snapshot's signature and every checksum, then put its files in index_dir (empty unless force).

    The files are verified in a staging directory inside index_dir, then moved into place
    under the write lock; a restore killed half way is completed by the next open (see
    search/restore.py). Only index data is replaced: keys, the session secret,
    the snapshot key and the audit log are left as they are. Erasures recorded after the
    snapshot was taken are applied again before the lock is released.
    """
    key = read_key(key_file or index_dir / KEY_FILE)
    if index_dir.exists() and _has_index_files(index_dir) and not force:
        raise ValueError(f"{index_dir} is not empty; restore into a new directory or pass --force")
    created = not index_dir.exists()
    index_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _restore_locked(snapshot, index_dir, key, lock_timeout)
    except BaseException:
        if created:  # a refused restore into a new directory leaves no directory (and no write.lock) behind
            shutil.rmtree(index_dir, ignore_errors=True)
        raise


def _restore_locked(snapshot: Path, index_dir: Path, key: bytes, lock_timeout: float) -> dict[str, Any]:
    """The restore itself, under the write lock: stage and verify, then move the files into place."""
    with write_lock(index_dir, lock_timeout):
        finish_restore(index_dir)  # an earlier, interrupted restore goes first
        staging = index_dir / RESTORE_DIR
        shutil.rmtree(staging, ignore_errors=True)  # staged but never marked ready: start over
        staging.mkdir(mode=0o700)
        description = _staged(snapshot, staging, key)
        # Erasures go into the staged store before it is marked ready: a restore killed after this
        # point is finished by the next open (search.index.finish_restore), which knows nothing of
        # erasures, so applying them after the move let a kill bring deleted prompts back.
        reapply_erasures(index_dir, staging / STORE)
        _without_journal(staging / STORE)
        if not (index_dir / KEY_FILE).exists():  # the key that verified it: this copy's snapshots are signed alike
            write_private(index_dir / KEY_FILE, key)
        plan = {"snapshot": str(snapshot), "files": sorted(description["files"]), "remove": sorted(MEMBERS)}
        write_private(staging / RESTORE_READY, json.dumps(plan).encode(), sync=True)
        fsync_dir(staging)
        finish_restore(index_dir)
    return description


def _without_journal(store: Path) -> None:
    """Fold a staged store's WAL into it, so the store is one file (the plan moves that file only)."""
    for suffix in ("-wal", "-shm"):
        if store.with_name(store.name + suffix).exists():
            db = sqlite3.connect(store)
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("PRAGMA journal_mode = DELETE")
            finally:
                db.close()
            return


def expire_snapshots(index_dir: Path, cutoff: float) -> int:
    """Delete the index's snapshots (DIR/snapshots) taken before cutoff: retention reaches them too."""
    folder = index_dir / SNAPSHOTS_DIR
    expired = [p for p in folder.glob("*.snapshot") if p.stat().st_mtime < cutoff] if folder.is_dir() else []
    for path in expired:
        path.unlink(missing_ok=True)
    return len(expired)


def _has_index_files(index_dir: Path) -> bool:
    return any(p.name not in (LOCK, KEY_FILE) for p in index_dir.iterdir())


def _staged(snapshot: Path, staging: Path, key: bytes) -> dict[str, Any]:
    """_extract_verified, leaving nothing behind when the snapshot is refused (a retry finds the folder as it was)."""
    try:
        return _extract_verified(snapshot, staging, key)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract_verified(snapshot: Path, staging: Path, key: bytes) -> dict[str, Any]:
    """Check the snapshot's header signature, then unpack each allowed member, checking its checksum."""
    try:
        with tarfile.open(snapshot, "r:") as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            if names[:2] != [DESCRIPTION, SIGNATURE] or not all(m.isreg() for m in members):
                raise IndexCorrupt(f"{snapshot} is not a promptsim snapshot (format {FORMAT})")
            header = _read_member(tar, members[0])
            if not hmac.compare_digest(_read_member(tar, members[1]).decode("ascii", "replace"), _sign(key, header)):
                raise IndexCorrupt(f"{snapshot} is not signed with this snapshot key; it was changed or made elsewhere")
            description = json.loads(header)
            if description.get("format") != FORMAT:
                raise IndexMismatch(
                    f"{snapshot} is a format {description.get('format')} snapshot, this promptsim restores format "
                    f"{FORMAT}; snapshot the index again with this release"
                )
            expected = description.get("files")
            if set(names[2:]) != set(expected) or len(names) != len(set(names)) or not set(expected) <= MEMBERS:
                raise IndexCorrupt(f"{snapshot} holds files other than an index's ({', '.join(sorted(names[2:]))})")
            for member in members[2:]:
                _extract_member(tar, member, staging / member.name, expected[member.name]["sha256"], snapshot)
    except (tarfile.TarError, OSError, EOFError, ValueError, KeyError, TypeError) as err:
        raise IndexCorrupt(f"{snapshot} is unreadable or truncated ({err})") from err
    return description


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, sha256: str, snapshot: Path) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise IndexCorrupt(f"{snapshot}: {member.name} is not a file")
    digest = hashlib.sha256()
    with source, create_private(target) as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    if not hmac.compare_digest(digest.hexdigest(), str(sha256)):
        raise IndexCorrupt(f"{snapshot}: {member.name} fails its checksum; the snapshot is damaged")


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > 1 << 20:
        raise IndexCorrupt(f"{member.name} is too large for a snapshot header")
    handle = tar.extractfile(member)
    if handle is None:
        raise IndexCorrupt(f"{member.name} is not a file")
    with handle:
        return handle.read()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _sign(key: bytes, header: bytes) -> str:
    return hmac.new(key, header, hashlib.sha256).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    handle: IO[bytes]
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

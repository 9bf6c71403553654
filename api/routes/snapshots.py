"""/v1/snapshots (admin): signed snapshots of the index data, and their verified restore."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Request

from indexer.snapshots import SNAPSHOTS_DIR, create_snapshot

from ..deps import ERRORS, KEYED, Admin, Service
from ..errors import ApiError
from ..schemas import Restored, SnapshotEntry, SnapshotList, SnapshotMade

router = APIRouter(prefix="/v1/snapshots", tags=["system"], responses=ERRORS, dependencies=KEYED)
NAME = r"^[0-9A-Za-z_-][0-9A-Za-z_.-]*\.snapshot$"


@router.post("", response_model=SnapshotMade)
def take_snapshot(request: Request, who: Admin, svc: Service) -> SnapshotMade:
    """Take a consistent, signed snapshot of the index (admin), while serving and ingesting go on."""
    folder = svc.index.path / SNAPSHOTS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}.snapshot"
    body = create_snapshot(svc.index.path, folder / name)
    return SnapshotMade(name=name, sha256=body["sha256"], files=sorted(body["files"]), created_at=body["created_at"])


@router.get("", response_model=SnapshotList)
def list_snapshots(who: Admin, svc: Service) -> SnapshotList:
    """Snapshots taken through the API, oldest first (restore one with POST .../restore)."""
    folder = svc.index.path / SNAPSHOTS_DIR
    files = sorted(folder.glob("*.snapshot")) if folder.exists() else []
    return SnapshotList(snapshots=[SnapshotEntry(name=f.name, bytes=f.stat().st_size) for f in files])


@router.post("/{name}/restore", response_model=Restored)
def restore_snapshot(name: Annotated[str, Path(max_length=128, pattern=NAME)], who: Admin, svc: Service) -> Restored:
    """Verify a snapshot's signature and checksums and bring the index data back to it (admin).

    Writes wait while the files are swapped; searches are answered from the state before,
    then from the restored state. Keys, sessions and the session secret are not index data:
    they stay as they are now, and prompts erased since the snapshot stay erased.
    """
    snapshot = svc.index.path / SNAPSHOTS_DIR / name
    if not snapshot.is_file():
        raise ApiError(404, f"no snapshot named {name!r}; GET /v1/snapshots lists them")
    body = svc.restore(snapshot)
    return Restored.model_validate(body)

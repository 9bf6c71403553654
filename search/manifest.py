"""The index directory's layout and manifest: what built it, so mismatches fail loudly."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import IndexCorrupt, IndexMismatch, IndexNotFound
from .minhash import MINHASH_VERSION, SHINGLING
from .normalize import NORMALIZATION_VERSION
from .snapshot import fsync_dir

# The layout of an index directory: file names and what they hold. Bumped whenever either
# changes; an index of another format is refused on open (see read_manifest), and
# `promptsim rebuild` brings an older one up to date. docs/index-format.md lists the formats.
#   1: LSH files named lsh.pickle / windows.pickle (holding .npz band arrays all the same)
#   2: the same files named for what they hold: lsh.npz / windows.npz
#   3: those files hold a band table (sorted band hashes and keys; search/band_table.py)
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
STORE = "prompts.sqlite"
VECTORS = "vectors.faiss"
LSH = "lsh.npz"
WINDOW_LSH = "windows.npz"
# Every derived file an older format named otherwise: rebuild removes them (promptsim/_index.py).
FORMER_NAMES = ("lsh.pickle", "windows.pickle")
LOCK = "write.lock"
KEYS = "keys.json"
RESTORE_DIR = ".restore"  # a snapshot's verified files, staged until they are all in place
RESTORE_READY = "READY"  # written once staging is complete: from then on a restore only rolls forward


@dataclass(frozen=True)
class IndexSettings:
    """Choices fixed when an index is created; every signal depends on them."""

    model: str = "all-MiniLM-L6-v2"
    num_perm: int = 128
    seed: int = 1
    lsh_threshold: float = 0.5
    vector_index: str = "auto"
    retention_days: float | None = None  # prompts older than this are purged (by `purge` and nightly runs)


@dataclass
class Manifest:
    """manifest.json: format, model, dimension, MinHash settings and counts."""

    settings: IndexSettings
    dim: int
    model_checksum: str
    minhash_fingerprint: str
    backend: str = "transformer"  # "transformer" (MiniLM) or "static" (model2vec, search/static_embedding.py)
    cosine_scale: dict[str, list[float]] | None = None  # the backend's cosines -> MiniLM's (None: identity)
    format_version: int = FORMAT_VERSION
    normalization_version: int = NORMALIZATION_VERSION
    minhash_version: int = MINHASH_VERSION
    shingling: str = SHINGLING
    scheme: str = "affine32"
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["settings"] = asdict(self.settings)
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Manifest:
        body = dict(body)
        body["settings"] = IndexSettings(**body["settings"])
        return cls(**body)


def read_manifest(directory: Path, *, older_format: bool = False) -> Manifest:
    """Load DIR/manifest.json, or explain what is wrong with it.

    older_format=True accepts an index of an older format: only for rebuild, which brings it up to date.
    """
    path = directory / MANIFEST
    if not path.exists():
        raise IndexNotFound(
            f"no promptsim index at {directory}; create one with 'promptsim ingest FILE --index {directory}'"
        )
    try:
        manifest = Manifest.from_json(json.loads(path.read_text("utf-8")))
    except (ValueError, TypeError, KeyError) as err:
        raise IndexCorrupt(
            f"{path} is not a promptsim manifest ({err}); rebuild the index from its source files"
        ) from err
    if not (older_format and manifest.format_version < FORMAT_VERSION):
        check_format(manifest, directory)
    return manifest


def check_format(manifest: Manifest, directory: Path) -> None:
    """Raise IndexMismatch, saying how to fix it, for an index of another format than this release's."""
    found = manifest.format_version
    if found == FORMAT_VERSION:
        return
    if found < FORMAT_VERSION:
        fix = f"run 'promptsim rebuild --index {directory}' to bring it up to date (the store is kept)"
    else:
        fix = "it was written by a newer promptsim; upgrade promptsim to open it"
    raise IndexMismatch(f"index {directory} has format {found}, this promptsim reads format {FORMAT_VERSION}; {fix}")


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Replace DIR/manifest.json atomically."""
    manifest.updated_at = time.time()
    tmp = directory / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n", "utf-8")
    os.replace(tmp, directory / MANIFEST)
    fsync_dir(directory)


def check_compatible(
    manifest: Manifest,
    wanted: IndexSettings | None,
    *,
    dim: int | None,
    model_checksum: str | None,
    minhash_fingerprint: str,
    directory: Path,
) -> None:
    """Raise IndexMismatch, saying how to fix it, if the index was built differently."""
    have = manifest.settings
    problems = []
    if wanted is not None:
        for name in ("model", "num_perm", "seed", "lsh_threshold"):
            if getattr(have, name) != getattr(wanted, name):
                flag = "--" + name.replace("_", "-")
                problems.append(
                    f"{name}={getattr(have, name)!r} (asked for {getattr(wanted, name)!r}; pass {flag} "
                    f"{getattr(have, name)} or leave it out)"
                )
    if dim is not None and dim != manifest.dim:
        problems.append(f"dim={manifest.dim} but the encoder gives {dim}")
    if model_checksum is not None and model_checksum != manifest.model_checksum:
        problems.append(f"model weights checksum {manifest.model_checksum}, the loaded model has {model_checksum}")
    if minhash_fingerprint != manifest.minhash_fingerprint or manifest.minhash_version != MINHASH_VERSION:
        problems.append("MinHash signatures were made by another promptsim release (shingling or permutations differ)")
    if manifest.normalization_version != NORMALIZATION_VERSION:
        problems.append(f"normalization v{manifest.normalization_version}, this release uses v{NORMALIZATION_VERSION}")
    if problems:
        raise IndexMismatch(
            f"index {directory} was built with "
            + "; ".join(problems)
            + ". Use matching settings, or ingest into a new --index directory"
        )

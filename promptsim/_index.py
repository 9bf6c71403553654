"""Opening an index directory with the model its manifest names (bundled, offline)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from search.embedding import SentenceTransformerEncoder
from search.index import PromptIndex
from search.lock import write_lock
from search.manifest import (
    FORMAT_VERSION,
    FORMER_NAMES,
    LSH,
    MANIFEST,
    VECTORS,
    WINDOW_LSH,
    IndexSettings,
    read_manifest,
    write_manifest,
)
from search.vectors import choose_kind

IndexLike = PromptIndex | str | os.PathLike[str]


def open_index(
    path: str | os.PathLike[str], *, writable: bool = False, with_model: bool = True, structures: bool = True
) -> PromptIndex:
    """Open the index at path, with the embedding model its manifest records (offline, bundled).

    writable takes the directory's write lock (ingest, delete); with_model=False skips loading
    the model, for work that embeds nothing (stats, dedup, delete); structures=False skips
    loading FAISS, the LSHs and the in-memory tables, for read-only work on the store alone
    (dedup: ~4 GB less at a million prompts). Close it, or use `with`.
    No index there raises IndexNotFound, saying how to make one.
    """
    manifest = read_manifest(Path(path))
    encoder = SentenceTransformerEncoder(manifest.settings.model) if with_model else None
    return PromptIndex.open(Path(path), encoder, writable=writable, structures=structures)


@contextmanager
def writable_index(target: IndexLike, settings: IndexSettings | None = None) -> Iterator[PromptIndex]:
    """target opened for writing (created with settings if new), or target itself if already open.

    An index this call created and left empty is removed again: an ingest that stored
    nothing leaves no index behind (with a model fixed that the user never chose).
    """
    if isinstance(target, PromptIndex):
        target._require_writable()
        yield target
        return
    path = Path(target)
    existed = path.is_dir()
    before = set(os.listdir(path)) if existed else set()
    fresh = not (path / MANIFEST).exists()
    chosen = settings or (read_manifest(path).settings if not fresh else IndexSettings())
    index = PromptIndex.open(
        path, SentenceTransformerEncoder(chosen.model), settings=settings, writable=True, create=True
    )
    try:
        yield index
    finally:
        empty = fresh and index.store.stats()["prompts"] == 0
        index.close()
        if empty:
            _remove_created(path, before, existed)


def _remove_created(path: Path, before: set[str], existed: bool) -> None:
    """Remove what creating an index put into path (the directory too, if it was made for it)."""
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in set(os.listdir(path)) - before:
        entry = path / name
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)


@contextmanager
def opened(
    target: IndexLike, *, writable: bool = False, with_model: bool = True, structures: bool = True
) -> Iterator[PromptIndex]:
    """target itself if already open, else the index at that path, closed afterwards."""
    if isinstance(target, PromptIndex):
        yield target
        return
    index = open_index(target, writable=writable, with_model=with_model, structures=structures)
    try:
        yield index
    finally:
        index.close()


def rebuild(path: str | os.PathLike[str], *, vector_index: str | None = None) -> dict[str, int]:
    """Write FAISS and the LSHs of the index at path again from its store; returns what each holds.

    Whatever state their files are in (damaged, missing, or laid out by an older index format),
    they are removed first under the write lock, so opening the index cannot fail on them; an
    older format's manifest is then stamped with the current one (the store needs no change:
    opening it for writing adds what an older store lacks). vector_index, when given, becomes
    the index's FAISS kind (search.vectors.KINDS) from now on.
    """
    directory = Path(path)
    read_manifest(directory, older_format=True)
    if vector_index is not None:
        choose_kind(vector_index, 0)  # refused before anything is removed
    with write_lock(directory):
        for name in (VECTORS, LSH, WINDOW_LSH, *FORMER_NAMES):
            (directory / name).unlink(missing_ok=True)
        _bring_format_up_to_date(directory)
        if vector_index is not None:
            manifest = read_manifest(directory)
            manifest.settings = replace(manifest.settings, vector_index=vector_index)
            write_manifest(directory, manifest)
    with opened(directory, writable=True, with_model=False) as index:  # no files: opening rebuilds them
        index.checkpoint()
        return index.counts()


def _bring_format_up_to_date(directory: Path) -> None:
    """Stamp an older-format manifest with the current format; its derived files are gone already."""
    manifest = read_manifest(directory, older_format=True)
    if manifest.format_version < FORMAT_VERSION:
        manifest.format_version = FORMAT_VERSION
        write_manifest(directory, manifest)

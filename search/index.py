"""PromptIndex: the index directory as one object — store, vectors, LSH and manifest kept in step.

Consistency model. The SQLite store is the truth and every batch is one transaction there;
a batch is acknowledged once that commits. FAISS and the LSH are derived: they live in
memory, are saved as checksummed snapshots stamped with the store watermark they reflect,
and on open the changes after that watermark are replayed from the store. So a process
killed at any instant leaves every acknowledged batch in all three structures after the
next open, and never a prompt in one structure but not another.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .duplicates import DuplicateIndex
from .embedding import Encoder
from .errors import IndexCorrupt, IndexLocked
from .manifest import (
    LEXICAL, LOCK, STORE, VECTORS, IndexSettings, Manifest, check_compatible, read_manifest, write_manifest,
)
from .minhash import MinHasher
from .normalize import normalize
from .records import Prompt
from .snapshot import read_snapshot, write_snapshot
from .store import PromptStore, Watermark
from .vectors import IVF_THRESHOLD, VectorIndex, choose_kind

logger = logging.getLogger(__name__)

# An IVF index is retrained once it holds this many times the vectors it was trained on.
_RETRAIN_GROWTH = 4


class PromptIndex:
    """An opened index directory. Readers may open many; one writer holds the lock."""

    def __init__(self, path: Path, manifest: Manifest, encoder: Encoder | None, *, writable: bool):
        self.path = path
        self.manifest = manifest
        self.encoder = encoder
        self.writable = writable
        self.hasher = MinHasher(manifest.settings.num_perm, manifest.settings.seed)
        self.store = PromptStore(path / STORE)
        self.vectors: VectorIndex
        self.duplicates: DuplicateIndex
        self._trained_on = 0
        self._load_structures()

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, encoder: Encoder | None, *, settings: IndexSettings | None = None,
             writable: bool = False, create: bool = False) -> PromptIndex:
        """Open (or, with create=True, make) the index at path, checking it fits encoder and settings.

        encoder may be None for work that needs no new embeddings (stats, delete, rebuild).
        """
        path = Path(path)
        lock = _acquire_lock(path, create) if writable else None
        try:
            if create and not (path / "manifest.json").exists():
                if encoder is None:
                    raise ValueError("creating an index needs an encoder")
                _create(path, encoder, settings or IndexSettings(model=encoder.name))
            manifest = read_manifest(path)
            check_compatible(manifest, settings, dim=None if encoder is None else encoder.dim,
                             model_checksum=None if encoder is None else encoder.checksum,
                             minhash_fingerprint=MinHasher(manifest.settings.num_perm, manifest.settings.seed).fingerprint,
                             directory=path)
            index = cls(path, manifest, encoder, writable=writable)
        except BaseException:
            if lock is not None:
                os.close(lock)
            raise
        index._lock = lock
        return index

    def close(self) -> None:
        """Release the store and the write lock."""
        self.store.close()
        if getattr(self, "_lock", None) is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> PromptIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_structures(self) -> None:
        vectors_file, lexical_file = self.path / VECTORS, self.path / LEXICAL
        if not vectors_file.exists() or not lexical_file.exists():
            self._rebuild_structures()
            return
        vec_header, vec_payload = read_snapshot(vectors_file)
        lex_header, lex_payload = read_snapshot(lexical_file)
        self.vectors = VectorIndex.from_bytes(vec_payload, vec_header["kind"])
        self._trained_on = int(vec_header.get("trained_on", 0))
        self.duplicates = DuplicateIndex.from_bytes(lex_payload, self.hasher, self.manifest.settings.lsh_threshold)
        for name, header, size in (("vectors", vec_header, len(self.vectors)), ("lsh", lex_header, len(self.duplicates))):
            if header.get("count") != size:
                raise IndexCorrupt(f"{name} snapshot holds {size} entries, its header says {header.get('count')}; "
                                   f"run 'promptsim rebuild --index {self.path}'")
        self._replay(Watermark(*vec_header["watermark"]), self.vectors)
        self._replay(Watermark(*lex_header["watermark"]), self.duplicates)

    def _replay(self, mark: Watermark, target: VectorIndex | DuplicateIndex) -> None:
        """Apply the store changes after mark to one in-memory structure (idempotently)."""
        added, deleted = self.store.changes_since(mark)
        if not len(added) and not len(deleted):
            return
        logger.info("replaying %d additions and %d deletions from the store", len(added), len(deleted))
        rows, vecs, sigs = self.store.signals(added, self.manifest.dim, self.manifest.settings.num_perm)
        target.remove(np.concatenate((deleted, rows)))  # removing first makes a repeated replay harmless
        if isinstance(target, VectorIndex):
            target.add(vecs, rows)
        else:
            target.insert(rows, sigs)

    def _rebuild_structures(self) -> None:
        """Regenerate FAISS and the LSH from the signals in the store."""
        settings, dim = self.manifest.settings, self.manifest.dim
        batches = list(self.store.iter_signals(dim, settings.num_perm))
        rows = np.concatenate([b[0] for b in batches]) if batches else np.zeros(0, np.int64)
        vecs = np.concatenate([b[1] for b in batches]) if batches else np.zeros((0, dim), np.float32)
        self.vectors = VectorIndex.build(vecs, rows, settings.vector_index) if len(rows) else VectorIndex.empty(dim)
        self._trained_on = len(rows) if self.vectors.kind == "ivf" else 0
        self.duplicates = DuplicateIndex(self.hasher, settings.lsh_threshold)
        for batch_rows, _, batch_sigs in batches:
            self.duplicates.insert(batch_rows, batch_sigs)

    # -- writing ------------------------------------------------------------------------

    def signals(self, texts: list[str], *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, signatures) of raw texts, computed from their normalized forms."""
        if self.encoder is None:
            raise ValueError("this index was opened without an encoder; it cannot embed new text")
        normalized = [normalize(t) for t in texts]
        return self.encoder.encode(normalized, batch_size=batch_size), self.hasher.signatures(normalized)

    def upsert(self, prompts: list[Prompt], vectors: np.ndarray, signatures: np.ndarray) -> None:
        """Store a batch (one transaction: acknowledged on return) and apply it in memory."""
        self._require_writable()
        rows, removed = self.store.upsert(prompts, vectors, signatures)
        self.vectors.remove(removed)
        self.duplicates.remove(removed.tolist())
        self.vectors.add(vectors, rows)
        self.duplicates.insert(rows, signatures)

    def delete_ids(self, ids: list[str]) -> int:
        """Delete prompts by id from every structure; returns how many existed."""
        self._require_writable()
        return self._drop(self.store.delete_ids(ids))

    def delete_account(self, account_id: str) -> int:
        """Delete every prompt of an account from every structure; returns how many."""
        self._require_writable()
        return self._drop(self.store.delete_account(account_id))

    def _drop(self, rows: np.ndarray) -> int:
        self.vectors.remove(rows)
        self.duplicates.remove(rows.tolist())
        return len(rows)

    def checkpoint(self) -> None:
        """Save FAISS and LSH snapshots at the current store watermark, then the manifest."""
        self._require_writable()
        self._maybe_reindex()
        mark = self.store.watermark().as_list()
        write_snapshot(self.path / VECTORS, {"watermark": mark, "kind": self.vectors.kind, "count": len(self.vectors),
                                             "trained_on": self._trained_on}, self.vectors.to_bytes())
        write_snapshot(self.path / LEXICAL, {"watermark": mark, "count": len(self.duplicates)},
                       self.duplicates.to_bytes())
        self.manifest.counts = self.counts()
        write_manifest(self.path, self.manifest)

    def rebuild(self) -> None:
        """Drop the derived structures and regenerate them from the store's signals."""
        self._require_writable()
        self._rebuild_structures()
        self.checkpoint()

    def _maybe_reindex(self) -> None:
        """Switch flat -> IVF past the threshold, and retrain IVF after large growth."""
        wanted = choose_kind(self.manifest.settings.vector_index, len(self.vectors))
        grown = self.vectors.kind == "ivf" and len(self.vectors) >= _RETRAIN_GROWTH * max(self._trained_on, 1)
        if wanted != self.vectors.kind or grown:
            logger.info("re-indexing %d vectors as %s (threshold %d)", len(self.vectors), wanted, IVF_THRESHOLD)
            self._rebuild_structures()

    def _require_writable(self) -> None:
        if not self.writable:
            raise ValueError("index opened read-only; open it with writable=True to change it")

    # -- reading ------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """What each structure holds; equal counts mean they agree."""
        stats = self.store.stats()
        return {"prompts": stats["prompts"], "vectors": len(self.vectors), "signatures": len(self.duplicates),
                "accounts": stats["accounts"]}


    def verify(self) -> dict[str, Any]:
        """Check that store, FAISS and LSH hold exactly the same rows, each once."""
        store_rows = self.store.rows_matching()
        vector_rows, lexical_rows = self.vectors.ids(), self.duplicates.rows()
        same = (np.array_equal(np.sort(store_rows), np.sort(vector_rows))
                and np.array_equal(np.sort(store_rows), lexical_rows))
        return {"consistent": bool(same) and self.store.duplicate_ids() == 0
                and len(np.unique(vector_rows)) == len(vector_rows),
                "store": len(store_rows), "vectors": len(vector_rows), "signatures": len(lexical_rows),
                "duplicate_ids": self.store.duplicate_ids()}


def _create(path: Path, encoder: Encoder, settings: IndexSettings) -> None:
    path.mkdir(parents=True, exist_ok=True)
    choose_kind(settings.vector_index, 0)  # validate early
    manifest = Manifest(settings=settings, dim=encoder.dim, model_checksum=encoder.checksum,
                        minhash_fingerprint=MinHasher(settings.num_perm, settings.seed).fingerprint)
    PromptStore(path / STORE).close()
    write_manifest(path, manifest)


def _acquire_lock(path: Path, create: bool) -> int:
    if create:
        path.mkdir(parents=True, exist_ok=True)
    elif not path.is_dir():
        read_manifest(path)  # raises IndexNotFound with the fix
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise IndexLocked(f"another promptsim process is writing to {path}; wait for it to finish") from None
    return fd

"""BandTable: MinHash LSH band buckets as sorted numpy arrays, ~16 bytes an entry instead of ~250.

The same banding as datasketch's MinHashLSH (its (bands, rows) for a threshold, band b is
signature[b*r:(b+1)*r]), so a query finds every key datasketch's `query` finds. What differs
is the storage: datasketch keeps each bucket as a Python set of Python ints in a dict per
band, 14.3 KB a prompt for promptsim's two LSHs at 100k prompts (docs/scale-out.md, "Memory
per prompt"). Here each band is two aligned arrays, a 64-bit hash of the band's values and
the key, sorted by hash; a query is one `searchsorted` per band.

- **Inserts** land in a small dict of pending rows (what datasketch does for everything) and
  are merged into the sorted arrays once they reach a share of the table, so a stream of
  256-prompt batches does not re-sort a million entries each time.
- **Removals** clear the key's bit in `present`; merged arrays drop dead entries at the next
  merge. A removed key is never returned.
- **Hash collisions** (two different band values with one 64-bit hash, ~n/2^64 a lookup) can
  only add a candidate, never lose one: candidates are verified against signatures anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

_U64 = np.uint64
_OFFSET, _PRIME = _U64(0xCBF29CE484222325), _U64(0x100000001B3)
_MIN_PENDING = 4096  # pending entries merged once above this and above a quarter of the merged ones


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 FNV-1a-style hash of each band's r values, the band number mixed in
    (so one sorted array can hold every band: equal values in two bands hash apart)."""
    signatures = np.atleast_2d(signatures)[:, : bands * rows].astype(_U64)
    blocks = signatures.reshape(len(signatures), bands, rows)
    h = np.broadcast_to(_OFFSET ^ np.arange(bands, dtype=_U64), (len(signatures), bands)).copy()
    with np.errstate(over="ignore"):  # the multiply wraps modulo 2^64 by design
        for col in range(rows):
            h = (h ^ blocks[:, :, col]) * _PRIME
    return h


class BandTable:
    """Which keys share at least one band with a signature; keys are non-negative ints (store rows)."""

    def __init__(self, bands: int, rows: int):
        self.bands, self.rows = bands, rows
        self._hashes = np.zeros(0, _U64)  # merged entries of every band, sorted
        self._members = np.zeros(0, np.int64)  # aligned with _hashes
        self._merged = np.zeros(0, dtype=bool)  # by key: its merged entries are live
        self._pending: list[defaultdict[int, list[int]]] = [defaultdict(list) for _ in range(bands)]
        self._pending_hashes: dict[int, list[int]] = {}  # key -> its band hashes, until merged
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: int) -> bool:
        return key in self._pending_hashes or (0 <= key < len(self._merged) and bool(self._merged[key]))

    def insert(self, keys: np.ndarray, signatures: np.ndarray) -> None:
        """Add each key's signature; a key already present is replaced."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(keys):
            return
        if len(np.unique(keys)) != len(keys):
            raise ValueError("a key appears twice in one insert")
        if int(keys.min()) < 0:
            raise ValueError("keys must be non-negative")
        self.remove(keys)
        hashes = band_hashes(signatures, self.bands, self.rows).tolist()
        for key, row_hashes in zip(keys.tolist(), hashes):
            self._pending_hashes[key] = row_hashes
            for pending, h in zip(self._pending, row_hashes):
                pending[h].append(key)
        self._count += len(keys)
        if len(self._pending_hashes) > max(_MIN_PENDING, len(self._members) // (4 * self.bands)):
            self.merge()

    def remove(self, keys: np.ndarray) -> int:
        """Forget keys; returns how many were present."""
        removed = 0
        for key in np.unique(np.asarray(keys, dtype=np.int64)).tolist():
            row_hashes = self._pending_hashes.pop(key, None)
            if row_hashes is not None:
                for pending, h in zip(self._pending, row_hashes):
                    pending[h].remove(key)
                    if not pending[h]:
                        del pending[h]
                removed += 1
            elif 0 <= key < len(self._merged) and self._merged[key]:
                self._merged[key] = False  # its merged entries are dead from now on, dropped at the next merge
                removed += 1
        self._count -= removed
        return removed

    def query(self, signature: np.ndarray, limit: int | None = None) -> np.ndarray:
        """Present keys sharing at least one band with signature, sorted.

        limit: when the merged buckets hold more than that many entries, a seeded sample of that
        many of them instead of all (a key in several matched bands is likelier to be drawn, as
        it is likelier similar), with each bucket's oldest and newest key. At 4M prompts a
        templated prompt's buckets held millions of entries, and gathering and de-duplicating
        them took a search ~0.5 s; the engine scores at most 20,000 candidates anyway.
        """
        hashes = band_hashes(signature, self.bands, self.rows)[0]
        starts = np.searchsorted(self._hashes, hashes, "left")
        ends = np.searchsorted(self._hashes, hashes, "right")
        total = int((ends - starts).sum())
        if limit is not None and total > limit:
            found = self._members[_positions_in_ranges(starts, ends, limit, total)]
        else:
            parts = [self._members[lo:hi] for lo, hi in zip(starts.tolist(), ends.tolist()) if hi > lo]
            found = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        found = found[self._merged[found]]
        pending = [key for band, h in enumerate(hashes.tolist()) for key in self._pending[band].get(h, ())]
        return np.unique(np.concatenate((found, np.asarray(pending, dtype=np.int64))))

    def keys(self) -> np.ndarray:
        """Every present key, sorted."""
        merged = np.flatnonzero(self._merged)
        return np.unique(np.concatenate((merged, np.fromiter(self._pending_hashes, np.int64)))).astype(np.int64)

    def merge(self) -> None:
        """Move the pending entries into the sorted arrays, dropping dead ones (a checkpoint does this too)."""
        live = self._merged[self._members]
        if not self._pending_hashes and live.all():
            return
        new_keys = np.fromiter(self._pending_hashes, np.int64, len(self._pending_hashes))
        new_hashes = np.asarray(list(self._pending_hashes.values()), dtype=_U64).reshape(-1)
        hashes = np.concatenate((self._hashes[live], new_hashes))
        members = np.concatenate((self._members[live], np.repeat(new_keys, self.bands)))
        order = np.lexsort((members, hashes))
        self._hashes, self._members = hashes[order], members[order]
        self._merged = _grown(self._merged, int(new_keys.max()) if len(new_keys) else -1)
        self._merged[new_keys] = True
        self._pending = [defaultdict(list) for _ in range(self.bands)]
        self._pending_hashes = {}

    def to_arrays(self, num_perm: int) -> dict[str, np.ndarray]:
        """The table as flat arrays, merged first: equal tables give equal arrays, whatever their history."""
        self.merge()
        live = self._merged[self._members]
        return {
            "params": np.array([num_perm, self.bands, self.rows], dtype=np.int64),
            "hashes": self._hashes[live],
            "keys": self._members[live],
        }

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], num_perm: int, bands: int, rows: int, *, max_key: int
    ) -> BandTable:
        """A table from to_arrays' output; ValueError if they are not one (params, order, counts).

        max_key bounds the keys (the store's last row): the key bitmap takes a byte per key up to
        the largest, so one corrupt key near 2**63 would otherwise ask for exabytes."""
        if arrays["params"].tolist() != [num_perm, bands, rows]:
            raise ValueError(f"(perms, bands, rows) {arrays['params'].tolist()}, expected {[num_perm, bands, rows]}")
        hashes, keys = arrays["hashes"], arrays["keys"]
        if hashes.dtype != _U64 or keys.dtype != np.int64 or hashes.shape != keys.shape or hashes.ndim != 1:
            raise ValueError("hashes and keys must be aligned 1-d uint64 and int64 arrays")
        if len(keys) and (int(keys.min()) < 0 or np.any(hashes[1:] < hashes[:-1])):
            raise ValueError("keys must be non-negative and hashes sorted")
        if len(keys) and int(keys.max()) > max_key:
            raise ValueError(f"key {int(keys.max())} is past the last one the store has given out ({max_key})")
        per_key = np.bincount(keys) if len(keys) else np.zeros(0, np.int64)
        if np.any((per_key != 0) & (per_key != bands)):
            raise ValueError(f"every key must have one entry in each of the {bands} bands")
        table = cls(bands, rows)
        table._hashes, table._members = hashes, keys
        table._merged = per_key == bands
        table._count = int(table._merged.sum())
        return table

    def nbytes(self) -> int:
        """Bytes held by the merged arrays and the key bitmap (pending entries are Python objects)."""
        return self._hashes.nbytes + self._members.nbytes + self._merged.nbytes


def _positions_in_ranges(starts: np.ndarray, ends: np.ndarray, count: int, total: int) -> np.ndarray:
    """count distinct positions drawn (seed 0) from the ranges [starts[i], ends[i]), total long
    together, and every non-empty range's first and last: a bucket's members are sorted, so
    those are its oldest and newest rows (a day against its history dates clusters by them)."""
    drawn = np.sort(np.random.default_rng(0).choice(total, count, replace=False))
    lengths = ends - starts
    before = np.concatenate(([0], np.cumsum(lengths)[:-1]))  # where each range starts in the drawing
    band = np.searchsorted(before, drawn, "right") - 1
    full = lengths > 0
    return np.concatenate((starts[band] + (drawn - before[band]), starts[full], ends[full] - 1))


def _grown(flags: np.ndarray, top: int) -> np.ndarray:
    if top < len(flags):
        return flags
    grown = np.zeros(max(top + 1, 2 * len(flags), 1024), dtype=bool)
    grown[: len(flags)] = flags
    return grown

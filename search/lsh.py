"""PromptLSH (whole prompts) and WindowLSH (head/tail windows): datasketch MinHashLSH keyed by store row ids."""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from itertools import chain, islice
from typing import Self

import numpy as np
from datasketch import MinHashLSH
from datasketch.lsh import _check_scheme_consistency
from datasketch.storage import DictListStorage

from .arrays import union_of_sorted
from .errors import IndexCorrupt
from .heap import gc_paused
from .minhash import MinHasher
from .signals import Signals


class PromptLSH:
    """LSH over MinHash signatures: which rows may have Jaccard above the threshold."""

    def __init__(self, hasher: MinHasher, threshold: float = 0.5, *, lsh: MinHashLSH | None = None):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"LSH threshold {threshold} must be strictly between 0 and 1")
        self._hasher = hasher
        self.threshold = threshold
        self._lsh = lsh if lsh is not None else MinHashLSH(threshold=threshold, num_perm=hasher.num_perm)

    @property
    def bands(self) -> tuple[int, int]:
        """(bands, rows per band) datasketch chose for the threshold."""
        return int(self._lsh.b), int(self._lsh.r)

    def __len__(self) -> int:
        return int(self._lsh.keys.size())

    def insert(self, rows: np.ndarray, signatures: np.ndarray) -> None:
        """Insert each row's signature (rows already present are replaced).

        The band keys are cut from the whole signature matrix at once and written to the
        LSH's dict storages directly: exactly what datasketch's per-key insert writes
        (pinned by a test), at a fraction of its per-key cost, which made LSH inserts the
        largest part of bulk ingest. Other storage kinds take datasketch's own path.
        """
        row_list = rows.tolist()
        for row in row_list:
            if row in self._lsh.keys:
                self._lsh.remove(row)
        if not row_list:
            return
        lsh = self._lsh
        if not self._in_memory_dicts():
            with lsh.insertion_session() as session:
                for row, signature in zip(row_list, signatures, strict=True):
                    session.insert(row, self._hasher.lean(signature), check_duplication=False)
            return
        lsh._minhash_scheme = _check_scheme_consistency(
            getattr(lsh, "_minhash_scheme", None), self._hasher.lean(signatures[0])
        )
        swapped = _swapped(signatures)
        bands = [_band_keys(swapped[:, lo:hi]) for lo, hi in lsh.hashranges]
        keys = lsh.keys._dict
        with gc_paused():  # hundreds of thousands of new buckets: see gc_paused
            for row, row_keys in zip(row_list, zip(*bands)):
                keys[row].extend(row_keys)
            for band, table in zip(bands, lsh.hashtables):
                # buckets[key].add(row) for each pair, iterated in C (no bytecode per pair): 17% faster
                deque(map(set.add, map(table._dict.__getitem__, band), row_list), maxlen=0)

    def insert_signals(self, rows: np.ndarray, signals: Signals) -> None:
        """Insert the whole-prompt signatures of rows."""
        self.insert(rows, signals.signatures)

    def remove(self, rows: Iterable[int]) -> int:
        """Remove rows; returns how many were present."""
        removed = 0
        for row in rows:
            if int(row) in self._lsh.keys:
                self._lsh.remove(int(row))
                removed += 1
        return removed

    def rows(self) -> np.ndarray:
        """Every stored row id (for consistency checks)."""
        return self.keys()

    def candidates(self, signature: np.ndarray) -> np.ndarray:
        """Rows that share at least one band with signature (likely Jaccard >= threshold), sorted.

        Reads the band buckets directly, as insert writes them: datasketch's query adds each
        member to a set in a Python loop, ~1 ms more a search at 100k prompts (campaign
        buckets hold hundreds of members). Same rows (pinned by a test).
        """
        lsh = self._lsh
        if not self._in_memory_dicts():
            return np.asarray(sorted(lsh.query(self._hasher.lean(signature))), dtype=np.int64)
        swapped = _swapped(signature)
        found: set[int] = set().union(
            *(table._dict.get(swapped[lo:hi].tobytes(), ()) for (lo, hi), table in zip(lsh.hashranges, lsh.hashtables))
        )
        rows = np.fromiter(found, dtype=np.int64, count=len(found))
        rows.sort()
        return rows

    def _in_memory_dicts(self) -> bool:
        """True for the LSH promptsim builds (in-memory dict storage, raw keys): the fast paths apply."""
        lsh = self._lsh
        return isinstance(lsh.keys, DictListStorage) and not lsh.prepickle and lsh.hashfunc is None

    def keys(self) -> np.ndarray:
        """Every stored key."""
        return np.asarray(sorted(self._lsh.keys.keys()), dtype=np.int64)

    def to_bytes(self) -> bytes:
        """The band tables as flat arrays (an uncompressed .npz; see _band_arrays)."""
        if not self._in_memory_dicts():
            raise ValueError("only promptsim's in-memory LSH can be saved (its band arrays); no other storage is")
        buffer = io.BytesIO()
        # numpy's stub reads any keyword as allow_pickle; ours are params, keys{n}, sizes{n}, members{n}
        np.savez(buffer, **_band_arrays(self._lsh))  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes, hasher: MinHasher, threshold: float) -> Self:
        index = cls(hasher, threshold)
        try:
            # allow_pickle=False: a pickle runs code as it loads, and a checksum stored beside it proves nothing.
            with np.load(io.BytesIO(payload), allow_pickle=False) as arrays, gc_paused():
                _fill_from_band_arrays(index._lsh, arrays)
        except (ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
            raise IndexCorrupt(
                f"this LSH file holds no band arrays ({err}); "
                "run 'promptsim rebuild --index DIR' to regenerate it from the store"
            ) from err
        if len(index):
            index._lsh._minhash_scheme = _check_scheme_consistency(
                None, hasher.lean(np.zeros(hasher.num_perm, np.uint32))
            )
        return index


class WindowLSH(PromptLSH):
    """LSH over head and tail window signatures; key 2*row is a row's head, 2*row+1 its tail."""

    def insert_signals(self, rows: np.ndarray, signals: Signals) -> None:
        keys, signatures = signals.window_keys(rows)
        self.insert(keys, signatures)

    def remove(self, rows: Iterable[int]) -> int:
        return super().remove(key for row in rows for key in (2 * int(row), 2 * int(row) + 1)) // 2

    def rows(self) -> np.ndarray:
        return np.unique(self.keys() // 2)

    def window_candidates(self, windows: np.ndarray) -> np.ndarray:
        """Rows whose head matches the query's head, or whose tail matches its tail."""
        heads = self.candidates(windows[0])
        tails = self.candidates(windows[1])
        return union_of_sorted(heads[heads % 2 == 0] // 2, tails[tails % 2 == 1] // 2)


def _band_arrays(lsh: MinHashLSH) -> dict[str, np.ndarray]:
    """Each band table as three arrays: its bucket keys end to end, bucket sizes, members in bucket order.

    Pickling datasketch's dict of sets walks millions of small objects through pickle's memo:
    0.4 s for 21k prompts' whole-prompt LSH, a fifth of bulk ingest's main process with one
    checkpoint midway and one at the end. These arrays come from C-level iteration over the
    same dicts (~3x faster, canonical order included) and load without unpickling anything.
    The per-row key lists (`lsh.keys`) are not saved: every row has one key in every band,
    so they are rebuilt.
    """
    arrays = {"params": np.array([lsh.h, lsh.b, lsh.r], dtype=np.int64)}
    for band, table in enumerate(lsh.hashtables):
        buckets = table._dict
        sizes = np.fromiter(map(len, buckets.values()), dtype=np.int64, count=len(buckets))
        keys = np.frombuffer(b"".join(buckets), dtype=f"V{4 * lsh.r}")
        members = np.fromiter(chain.from_iterable(buckets.values()), np.int64, int(sizes.sum()))
        # Canonical order, so equal LSHs save equal bytes whatever their history: single-row
        # buckets first, then the others (each group in dict order: the order _buckets loads
        # them in), members sorted within a bucket (a set's order depends on its history).
        bucket_of = np.repeat(np.arange(len(sizes)), sizes)
        members = _sorted_within_buckets(members, bucket_of, len(sizes))
        order = np.argsort(sizes != 1, kind="stable")
        arrays[f"keys{band}"] = keys[order].view(np.uint8)
        arrays[f"sizes{band}"] = sizes[order]
        arrays[f"members{band}"] = members[np.argsort(sizes[bucket_of] != 1, kind="stable")]
    return arrays


def _sorted_within_buckets(members: np.ndarray, bucket_of: np.ndarray, buckets: int) -> np.ndarray:
    """members sorted within each bucket (bucket_of: each member's bucket, nondecreasing).

    One sort of bucket * span + member, where that fits in int64 (any index below ~1 billion
    rows), instead of np.lexsort over the two arrays: both LSHs' _band_arrays at 100k prompts
    went from 1.1-1.3 to 0.86-0.96 s a snapshot, side by side, with the same bytes.
    """
    span = int(members.max()) + 1 if len(members) else 1
    if buckets * span >= 2**62:
        return members[np.lexsort((members, bucket_of))]
    offsets = bucket_of * span
    return np.sort(offsets + members) - offsets


def _fill_from_band_arrays(lsh: MinHashLSH, arrays: Mapping[str, np.ndarray]) -> None:
    """Rebuild an empty LSH's band tables and per-row key lists from _band_arrays' output."""
    if tuple(arrays["params"].tolist()) != (lsh.h, lsh.b, lsh.r):
        raise IndexCorrupt(
            f"LSH snapshot has (perms, bands, rows) {arrays['params'].tolist()}, expected {(lsh.h, lsh.b, lsh.r)}"
        )
    width = 4 * lsh.r  # a band key is r byte-swapped uint32 hash values
    rows: np.ndarray | None = None
    keys_by_band = []
    for band, table in enumerate(lsh.hashtables):
        sizes, members, raw = arrays[f"sizes{band}"], arrays[f"members{band}"], arrays[f"keys{band}"]
        if len(raw) != width * len(sizes) or int(sizes.sum()) != len(members):
            raise IndexCorrupt(f"LSH snapshot band {band} is inconsistent")
        table._dict, keys = _buckets(raw.view(f"V{width}"), sizes, members)
        order = np.argsort(members, kind="stable")
        if rows is None:
            rows = members[order]
        elif not np.array_equal(rows, members[order]):
            raise IndexCorrupt(f"LSH snapshot band {band} holds other rows than band 0")
        # Each row's key in this band, as the same bytes object the table holds (no copies).
        keys_by_band.append(keys[np.repeat(np.arange(len(keys)), sizes)[order]])
    if rows is not None and len(rows):
        lsh.keys._dict = defaultdict(list, zip(rows.tolist(), np.stack(keys_by_band, axis=1).tolist()))


def _buckets(
    keys: np.ndarray, sizes: np.ndarray, members: np.ndarray
) -> tuple[defaultdict[bytes, set[int]], np.ndarray]:
    """One band table (key -> set of rows) and its keys as an object array of the same bytes objects.

    Most buckets (80% at 100k prompts) hold one row; building those sets from a comprehension
    and the rest from runs of members takes half the time of one generator over all of them.
    """
    single = sizes == 1
    starts = np.cumsum(sizes) - sizes
    single_keys, multi_keys = keys[single].tolist(), keys[~single].tolist()  # bytes objects, made in C
    table = defaultdict(set, zip(single_keys, [{row} for row in members[starts[single]].tolist()]))
    rest = iter(members[np.repeat(~single, sizes)].tolist())
    table.update(zip(multi_keys, [set(islice(rest, size)) for size in sizes[~single].tolist()]))
    shared = np.empty(len(sizes), dtype=object)
    shared[single], shared[~single] = single_keys, multi_keys
    return table, shared


def _band_keys(band: np.ndarray) -> list[bytes]:
    """Each row's slice of byte-swapped hash values as bytes, made in C (half the time of .tobytes() per row)."""
    return np.ascontiguousarray(band).view(f"V{band.shape[1] * band.itemsize}").ravel().tolist()


def _swapped(signatures: np.ndarray) -> np.ndarray:
    """Hash values byte-swapped: a band's slice of them, as bytes, is datasketch's band key."""
    return np.ascontiguousarray(signatures, dtype=np.uint32).byteswap()

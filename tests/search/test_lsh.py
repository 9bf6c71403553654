"""PromptLSH and WindowLSH: bulk inserts write exactly what datasketch's own insert writes; snapshots load back."""

import io
import pickle

import numpy as np
import pytest
from datasketch import MinHashLSH

from search.arrays import union_of_sorted
from search.errors import IndexCorrupt
from search.lsh import PromptLSH, WindowLSH, _sorted_within_buckets
from search.minhash import MinHasher


def test_bulk_insert_matches_datasketch_insert_key_for_key():
    hasher = MinHasher()
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2**32, (2000, 128), dtype=np.uint32)
    signatures[100:150] = signatures[7]  # whole buckets shared
    signatures[300:320, :40] = signatures[8, :40]  # some bands shared
    rows = np.arange(2000, dtype=np.int64) * 5
    ours = PromptLSH(hasher, 0.5)
    ours.insert(rows[:1200], signatures[:1200])
    ours.insert(rows[1000:], signatures[1000:])  # 200 rows inserted again: replaced, not doubled
    reference = MinHashLSH(threshold=0.5, num_perm=128)
    for row, signature in zip(rows.tolist(), signatures):
        reference.insert(row, hasher.lean(signature))
    assert ours._lsh.keys._dict == reference.keys._dict
    for mine, theirs in zip(ours._lsh.hashtables, reference.hashtables):
        assert dict(mine._dict) == dict(theirs._dict)
    for probe in (7, 8, 1500):
        query = hasher.lean(signatures[probe])
        assert sorted(ours._lsh.query(query)) == sorted(reference.query(query))
    assert set(ours.candidates(signatures[7]).tolist()) >= {35, *(5 * i for i in range(100, 150))}


def test_candidates_read_from_the_buckets_are_datasketch_query_results():
    hasher = MinHasher()
    rng = np.random.default_rng(2)
    signatures = rng.integers(0, 2**32, (3000, 128), dtype=np.uint32)
    signatures[:400, :64] = signatures[400, :64]  # a campaign: 400 rows share half their bands
    signatures[500:510] = signatures[511]
    ours = PromptLSH(hasher, 0.5)
    ours.insert(np.arange(3000, dtype=np.int64), signatures)
    probes = np.concatenate((signatures[[0, 400, 511, 2999]], rng.integers(0, 2**32, (3, 128), dtype=np.uint32)))
    sizes = []
    for probe in probes:
        found = ours.candidates(probe)
        assert found.dtype == np.int64 and found.tolist() == sorted(ours._lsh.query(hasher.lean(probe)))
        sizes.append(len(found))
    assert sizes[:3] == [401, 401, 11] and sizes[3] >= 1 and sizes[4:] == [0, 0, 0]


def test_reinserting_a_row_with_a_new_signature_drops_its_old_buckets():
    hasher = MinHasher()
    rng = np.random.default_rng(1)
    old, new = rng.integers(0, 2**32, (2, 128), dtype=np.uint32)
    windows = WindowLSH(hasher, 0.5)
    windows.insert(np.array([10]), old[None])
    windows.insert(np.array([10]), new[None])
    assert windows.candidates(old).tolist() == [] and windows.candidates(new).tolist() == [10]
    assert len(windows) == 1


def assert_same_lsh(ours: PromptLSH, theirs: PromptLSH) -> None:
    assert dict(ours._lsh.keys._dict) == dict(theirs._lsh.keys._dict)
    for mine, other in zip(ours._lsh.hashtables, theirs._lsh.hashtables, strict=True):
        assert dict(mine._dict) == dict(other._dict)
    assert ours._lsh._minhash_scheme == theirs._lsh._minhash_scheme


@pytest.mark.parametrize("kind", [PromptLSH, WindowLSH])
def test_a_saved_lsh_loads_back_bucket_for_bucket_without_pickle(kind):
    hasher = MinHasher()
    rng = np.random.default_rng(3)
    signatures = rng.integers(0, 2**32, (3000, 128), dtype=np.uint32)
    signatures[:300, :64] = signatures[300, :64]  # shared buckets of many sizes
    signatures[400:410] = signatures[411]
    signatures[500:520, :5] = 0  # band keys full of zero bytes (a bytes dtype would strip them)
    index = kind(hasher, 0.5)
    index.insert(np.arange(3000, dtype=np.int64) * 3, signatures)
    index.remove(range(0, 900, 9))  # removals leave no empty buckets behind
    payload = index.to_bytes()
    assert not payload.startswith(b"\x80")  # an .npz, not a pickle
    loaded = kind.from_bytes(payload, hasher, 0.5)
    assert_same_lsh(loaded, index)
    assert loaded.to_bytes() == payload  # saving what was loaded writes the same bytes
    for probe in signatures[[0, 300, 411, 505, 2999]]:
        assert loaded.candidates(probe).tolist() == index.candidates(probe).tolist()
        assert sorted(loaded._lsh.query(hasher.lean(probe))) == sorted(index._lsh.query(hasher.lean(probe)))
    # each row's key list holds the very bytes objects its buckets are keyed by (no second copy)
    table_keys = {id(key) for table in loaded._lsh.hashtables for key in table._dict}
    assert all(id(key) in table_keys for keys in loaded._lsh.keys._dict.values() for key in keys)
    # the loaded LSH keeps working: a removal and an insert after loading
    for lsh in (loaded, index):
        lsh.remove([3])
        lsh.insert(np.array([3]), signatures[1:2])
    assert_same_lsh(loaded, index)
    empty = kind(hasher, 0.5)
    assert len(kind.from_bytes(empty.to_bytes(), hasher, 0.5)) == 0


@pytest.mark.parametrize("payload", ["pickle", "garbage", "empty npz"])
def test_a_payload_without_band_arrays_is_refused_with_the_fix_and_never_unpickled(payload):
    hasher = MinHasher()
    signatures = np.random.default_rng(4).integers(0, 2**32, (500, 128), dtype=np.uint32)
    index = PromptLSH(hasher, 0.5)
    index.insert(np.arange(500, dtype=np.int64), signatures)
    buffer = io.BytesIO()
    np.savez(buffer, unrelated=np.zeros(3))
    data = {
        "pickle": pickle.dumps(index._lsh, protocol=pickle.HIGHEST_PROTOCOL),
        "garbage": b"\x00garbage" * 64,
        "empty npz": buffer.getvalue(),
    }[payload]
    with pytest.raises(IndexCorrupt, match="promptsim rebuild"):
        PromptLSH.from_bytes(data, hasher, 0.5)


def test_an_lsh_snapshot_of_other_parameters_or_inconsistent_arrays_is_refused():
    hasher = MinHasher()
    index = PromptLSH(hasher, 0.5)
    index.insert(np.arange(50, dtype=np.int64), np.random.default_rng(5).integers(0, 2**32, (50, 128), np.uint32))
    with pytest.raises(IndexCorrupt, match="bands"):
        PromptLSH.from_bytes(index.to_bytes(), hasher, 0.8)  # another threshold: other bands
    arrays = dict(np.load(io.BytesIO(index.to_bytes())))
    arrays["members3"] = arrays["members3"] + 1
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(IndexCorrupt, match="band 3"):
        PromptLSH.from_bytes(buffer.getvalue(), hasher, 0.5)


def test_union_of_sorted_is_union1d():
    rng = np.random.default_rng(6)
    for size_a, size_b in [(0, 0), (0, 5), (7, 0), (1, 1), (300, 200), (2000, 50)]:
        a = np.unique(rng.integers(0, 1000, size_a))
        b = np.unique(np.concatenate((rng.integers(0, 1000, size_b), a[: size_a // 2])))[:size_b]
        found = union_of_sorted(a.astype(np.int64), b.astype(np.int64))
        assert found.tolist() == np.union1d(a, b).tolist()


@pytest.mark.parametrize("largest_row", [0, 1_000, 2**60])  # 2**60: the combined key would overflow: the lexsort path
def test_members_are_sorted_within_buckets_as_lexsort_sorts_them(largest_row):
    rng = np.random.default_rng(7)
    sizes = rng.choice([1, 1, 1, 2, 3, 40], size=5_000)
    bucket_of = np.repeat(np.arange(len(sizes)), sizes)
    members = rng.integers(0, largest_row + 1, len(bucket_of))
    expected = members[np.lexsort((members, bucket_of))]
    assert _sorted_within_buckets(members, bucket_of, len(sizes)).tolist() == expected.tolist()
    assert len(_sorted_within_buckets(members[:0], bucket_of[:0], 0)) == 0

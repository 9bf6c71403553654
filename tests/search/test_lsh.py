"""PromptLSH and WindowLSH: the candidates datasketch's MinHashLSH.query finds; saved tables load back."""

import io
import pickle

import numpy as np
import pytest
from datasketch import MinHashLSH

from search.arrays import union_of_sorted
from search.errors import IndexCorrupt
from search.lsh import PromptLSH, WindowLSH
from search.minhash import MinHasher


def datasketch_reference(hasher: MinHasher, rows: np.ndarray, signatures: np.ndarray) -> MinHashLSH:
    reference = MinHashLSH(threshold=0.5, num_perm=128)
    for row, signature in zip(rows.tolist(), signatures):
        if row in reference.keys:
            reference.remove(row)
        reference.insert(row, hasher.lean(signature))
    return reference


def test_candidates_are_datasketch_query_results_through_replacements():
    hasher = MinHasher()
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2**32, (2000, 128), dtype=np.uint32)
    signatures[100:150] = signatures[7]  # whole buckets shared
    signatures[300:320, :40] = signatures[8, :40]  # some bands shared
    rows = np.arange(2000, dtype=np.int64) * 5
    ours = PromptLSH(hasher, 0.5)
    ours.insert(rows[:1200], signatures[:1200])
    replaced = signatures[1000:].copy()
    replaced[:200] = signatures[7]  # 200 rows inserted again with another signature: replaced, not doubled
    ours.insert(rows[1000:], replaced)
    reference = datasketch_reference(
        hasher, np.concatenate((rows[:1200], rows[1000:])), np.concatenate((signatures[:1200], replaced))
    )
    assert ours.bands == (reference.b, reference.r) and len(ours) == 2000
    assert ours.keys().tolist() == sorted(reference.keys.keys())
    for probe in (7, 8, 1500, 1100):
        assert ours.candidates(signatures[probe]).tolist() == sorted(reference.query(hasher.lean(signatures[probe])))
    assert set(ours.candidates(signatures[7]).tolist()) >= {35, *(5 * i for i in range(100, 150))}


def test_candidates_of_a_campaign_and_of_strangers():
    hasher = MinHasher()
    rng = np.random.default_rng(2)
    signatures = rng.integers(0, 2**32, (3000, 128), dtype=np.uint32)
    signatures[:400, :64] = signatures[400, :64]  # a campaign: 400 rows share half their bands
    signatures[500:510] = signatures[511]
    ours = PromptLSH(hasher, 0.5)
    ours.insert(np.arange(3000, dtype=np.int64), signatures)
    reference = datasketch_reference(hasher, np.arange(3000, dtype=np.int64), signatures)
    probes = np.concatenate((signatures[[0, 400, 511, 2999]], rng.integers(0, 2**32, (3, 128), dtype=np.uint32)))
    sizes = []
    for probe in probes:
        found = ours.candidates(probe)
        assert found.dtype == np.int64 and found.tolist() == sorted(reference.query(hasher.lean(probe)))
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


@pytest.mark.parametrize("kind", [PromptLSH, WindowLSH])
def test_a_saved_lsh_loads_back_key_for_key_without_pickle(kind):
    hasher = MinHasher()
    rng = np.random.default_rng(3)
    signatures = rng.integers(0, 2**32, (3000, 128), dtype=np.uint32)
    signatures[:300, :64] = signatures[300, :64]  # shared buckets of many sizes
    signatures[400:410] = signatures[411]
    signatures[500:520, :5] = 0  # band values of zeros
    index = kind(hasher, 0.5)
    index.insert(np.arange(3000, dtype=np.int64) * 3, signatures)
    index.remove(range(0, 900, 9))
    payload = index.to_bytes()
    assert not payload.startswith(b"\x80")  # an .npz, not a pickle
    loaded = kind.from_bytes(payload, hasher, 0.5, last_row=9000)
    assert loaded.keys().tolist() == index.keys().tolist() and len(loaded) == len(index)
    assert loaded.to_bytes() == payload  # saving what was loaded writes the same bytes
    for probe in signatures[[0, 300, 411, 505, 2999]]:
        assert loaded.candidates(probe).tolist() == index.candidates(probe).tolist()
    # the loaded LSH keeps working: a removal and an insert after loading
    for lsh in (loaded, index):
        lsh.remove([3])
        lsh.insert(np.array([3]), signatures[1:2])
    assert loaded.to_bytes() == index.to_bytes()
    empty = kind(hasher, 0.5)
    assert len(kind.from_bytes(empty.to_bytes(), hasher, 0.5, last_row=0)) == 0


def test_the_same_rows_save_the_same_bytes_whatever_the_history():
    hasher = MinHasher()
    signatures = np.random.default_rng(8).integers(0, 2**32, (500, 128), dtype=np.uint32)
    at_once, in_steps = PromptLSH(hasher, 0.5), PromptLSH(hasher, 0.5)
    at_once.insert(np.arange(500), signatures)
    in_steps.insert(np.arange(250, 500), signatures[250:])
    in_steps.insert(np.arange(250), signatures[::-1][:250])  # other signatures first ...
    in_steps.insert(np.arange(250), signatures[:250])  # ... then replaced
    assert at_once.to_bytes() == in_steps.to_bytes()


def test_memory_is_sixteen_bytes_a_band_entry():
    hasher = MinHasher()
    signatures = np.random.default_rng(9).integers(0, 2**32, (10_000, 128), dtype=np.uint32)
    index = PromptLSH(hasher, 0.5)
    index.insert(np.arange(10_000), signatures)
    index.to_bytes()  # merges what is pending, as a checkpoint does
    assert index.nbytes() <= 10_000 * (16 * index.bands[0] + 2)  # datasketch held ~250 bytes an entry


@pytest.mark.parametrize("payload", ["pickle", "garbage", "empty npz"])
def test_a_payload_without_a_band_table_is_refused_with_the_fix_and_never_unpickled(payload):
    hasher = MinHasher()
    buffer = io.BytesIO()
    np.savez(buffer, unrelated=np.zeros(3))
    data = {
        "pickle": pickle.dumps({"a": 1}, protocol=pickle.HIGHEST_PROTOCOL),
        "garbage": b"\x00garbage" * 64,
        "empty npz": buffer.getvalue(),
    }[payload]
    with pytest.raises(IndexCorrupt, match="promptsim rebuild"):
        PromptLSH.from_bytes(data, hasher, 0.5, last_row=100)


@pytest.mark.parametrize("damage", ["params", "unsorted", "missing entry", "negative", "key past the store"])
def test_an_lsh_file_of_other_parameters_or_inconsistent_arrays_is_refused(damage):
    hasher = MinHasher()
    index = PromptLSH(hasher, 0.5)
    index.insert(np.arange(50, dtype=np.int64), np.random.default_rng(5).integers(0, 2**32, (50, 128), np.uint32))
    arrays = dict(np.load(io.BytesIO(index.to_bytes())))
    if damage == "params":
        arrays["params"] = np.array([128, 20, 6])
    elif damage == "unsorted":
        arrays["hashes"] = arrays["hashes"][::-1].copy()
    elif damage == "missing entry":
        arrays["hashes"], arrays["keys"] = arrays["hashes"][1:], arrays["keys"][1:]
    elif damage == "negative":
        arrays["keys"] = arrays["keys"] - 10
    else:  # every band entry of one row, renamed to a row near 2**62: a byte a key would be exabytes
        arrays["keys"] = np.where(arrays["keys"] == 49, 2**62, arrays["keys"])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(IndexCorrupt, match="promptsim rebuild"):
        PromptLSH.from_bytes(buffer.getvalue(), hasher, 0.5, last_row=49)
    with pytest.raises(IndexCorrupt, match="band table"):
        PromptLSH.from_bytes(index.to_bytes(), hasher, 0.8, last_row=49)  # another threshold: other bands


@pytest.mark.parametrize("kind", [PromptLSH, WindowLSH])
def test_an_lsh_naming_a_row_the_store_never_gave_out_is_refused(kind):
    hasher = MinHasher()
    index = kind(hasher, 0.5)
    keys = np.arange(100 if kind is WindowLSH else 50, dtype=np.int64)  # rows 0..49 (a head and a tail each)
    index.insert(keys, np.random.default_rng(4).integers(0, 2**32, (len(keys), 128), np.uint32))
    payload = index.to_bytes()
    loaded = kind.from_bytes(payload, hasher, 0.5, last_row=49)  # row 49 is the last one given out
    assert loaded.keys().tolist() == keys.tolist()
    with pytest.raises(IndexCorrupt, match="past the last one the store has given out"):
        kind.from_bytes(payload, hasher, 0.5, last_row=48)


def test_union_of_sorted_is_union1d():
    rng = np.random.default_rng(6)
    for size_a, size_b in [(0, 0), (0, 5), (7, 0), (1, 1), (300, 200), (2000, 50)]:
        a = np.unique(rng.integers(0, 1000, size_a))
        b = np.unique(np.concatenate((rng.integers(0, 1000, size_b), a[: size_a // 2])))[:size_b]
        found = union_of_sorted(a.astype(np.int64), b.astype(np.int64))
        assert found.tolist() == np.union1d(a, b).tolist()

import faiss
import numpy as np
import pytest

from search.index import PromptIndex
from search.records import Prompt
from search.vectors import (
    IVF_THRESHOLD,
    NPROBE,
    PROBED_SHARE,
    VectorIndex,
    choose_kind,
    faiss_threads,
    ivf_lists,
    ivf_probes,
)
from tests.conftest import FakeEncoder, background_texts


def unit(rng, n, d=32):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng, n, d=32, centers=40):
    """Unit vectors around a few centres, like sentence embeddings (uniform noise has no structure for IVF)."""
    c = unit(rng, centers, d)
    x = c[rng.integers(centers, size=n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x, q, k):
    scores = q @ x.T
    return np.argsort(-scores, axis=1)[:, :k], np.sort(scores, axis=1)[:, ::-1][:, :k]


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf-fp16"])
def test_hits_match_exact_brute_force(kind):
    rng = np.random.default_rng(0)
    x = clustered(rng, 2050)
    x, q = x[:2000], x[2000:]
    ids = np.arange(1000, 3000)
    with faiss_threads(1):
        index = VectorIndex.build(x, ids, kind)
        found = index.search(q, 10)
    ref_ids, ref_scores = brute_force(x, q, 10)
    # scores agree to float precision wherever the ids agree; ids may differ only at ties
    recall = np.mean([len(set(found.ids[i]) & set(ref_ids[i] + 1000)) / 10 for i in range(len(q))])
    assert recall >= (1.0 if kind == "flat" else 0.95)
    if kind == "flat":
        np.testing.assert_allclose(found.scores, ref_scores, atol=1e-5)


def test_remove_and_filtered_search():
    rng = np.random.default_rng(1)
    x = unit(rng, 500)
    index = VectorIndex.build(x, np.arange(500), "flat")
    assert index.remove(np.array([0, 1, 999])) == 2
    assert len(index) == 498
    found = index.search(x[:1], 5)
    assert 0 not in found.ids[0]
    allowed = np.array([10, 20, 30])
    found = index.search(x[:1], 5, allowed=allowed)
    assert set(found.ids[0][found.ids[0] >= 0]) == {10, 20, 30}


def test_range_search_returns_everything_above_the_radius():
    rng = np.random.default_rng(2)
    x = unit(rng, 800)
    index = VectorIndex.build(x, np.arange(800), "flat")
    found = index.range_search(x[:3], 0.3)
    assert found.limits[-1] == len(found.ids) == len(found.scores)
    for i in range(3):
        expected = set(np.flatnonzero(x @ x[i] >= 0.3).tolist())
        assert set(found.ids_of(i).tolist()) == expected
        assert np.allclose(found.scores_of(i), x[found.ids_of(i)] @ x[i], atol=1e-5)
        assert (found.scores_of(i) >= np.float32(0.3) - 1e-6).all()


def test_index_kind_switches_at_the_documented_size():
    """The sizes in the comment above IVF_THRESHOLD (measured by bench/faiss_scale.py), built for real."""
    assert (IVF_THRESHOLD, NPROBE) == (50_000, 32)
    assert [ivf_lists(n) for n in (IVF_THRESHOLD, 100_000, 1_000_000)] == [894, 1264, 4000]
    rng = np.random.default_rng(4)
    x = unit(rng, IVF_THRESHOLD, d=8)
    below = VectorIndex.build(x[:-1], np.arange(IVF_THRESHOLD - 1))
    assert below.kind == "flat" and isinstance(below._index, faiss.IndexIDMap2)
    at = VectorIndex.build(x, np.arange(IVF_THRESHOLD))
    assert at.kind == "ivf" and isinstance(at._index, faiss.IndexIVFFlat)
    assert (at._index.nlist, at._index.nprobe, len(at)) == (894, NPROBE, IVF_THRESHOLD)
    assert VectorIndex.build(x[:100], np.arange(100), "ivf").kind == "ivf"  # an explicit kind wins
    assert choose_kind("flat", 10**7) == "flat" and choose_kind("ivf", 10**7) == "ivf"
    assert [choose_kind("auto", n) for n in (999_999, 1_000_000)] == ["ivf", "ivf-fp16"]  # half floats from 1M
    with pytest.raises(ValueError, match="unknown"):
        choose_kind("hnsw", 10)


def test_index_switches_to_ivf_when_growth_reaches_the_threshold(tmp_path, monkeypatch):
    """A growing index stays flat one vector short of the threshold and is IVF from it on, also after reopening."""
    import search.vectors as vectors

    monkeypatch.setattr(vectors, "IVF_THRESHOLD", 150)
    texts = background_texts(150)
    batch = [Prompt(f"p{i}", t, "a", 1_763_000_000.0 + i) for i, t in enumerate(texts)]
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True, create=True) as index:
        index.upsert(batch[:149], index.signals(texts[:149]))
        index.checkpoint()
        assert index.vectors.kind == "flat"
        index.upsert(batch[149:], index.signals(texts[149:]))
        index.checkpoint()
        assert index.vectors.kind == "ivf" and index.vectors._index.nprobe == min(NPROBE, ivf_lists(150))
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        assert index.vectors.kind == "ivf" and len(index.vectors) == 150


@pytest.mark.parametrize("nprobe", [2, 40, 60])
def test_a_loaded_ivf_probes_at_least_its_share_of_lists_and_keeps_its_direct_map(nprobe):
    rng = np.random.default_rng(5)
    x = clustered(rng, 3000)
    index = VectorIndex.build(x, np.arange(3000), "ivf", nprobe=nprobe)
    assert index._index.nprobe == min(nprobe, index._index.nlist)  # an explicit nprobe is taken as given
    loaded = VectorIndex.from_bytes(bytes(index.to_bytes()), "ivf")
    assert loaded._index.nprobe == max(index._index.nprobe, ivf_probes(index._index.nlist))  # older files: raised
    assert loaded._index.direct_map.type == faiss.DirectMap.Hashtable  # vectors_of() needs it


def test_lists_probed_grow_with_the_lists():
    assert (NPROBE, PROBED_SHARE) == (32, 32)
    assert [ivf_probes(n) for n in (10, 894, 1024, 1025, 2025, 4040, 8000)] == [10, 32, 32, 33, 64, 127, 250]
    x = clustered(np.random.default_rng(7), 70_000, d=8)
    built = VectorIndex.build(x, np.arange(70_000))
    assert (built.kind, built._index.nlist, built._index.nprobe) == ("ivf", 1058, 34)


def test_round_trip_bytes():
    rng = np.random.default_rng(3)
    x = unit(rng, 300)
    index = VectorIndex.build(x, np.arange(300), "ivf")
    copy = VectorIndex.from_bytes(bytes(index.to_bytes()), "ivf")
    assert len(copy) == 300
    assert np.array_equal(np.sort(copy.ids()), np.arange(300))
    assert np.array_equal(copy.search(x[:4], 3).ids, index.search(x[:4], 3).ids)
    assert faiss is not None


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf-fp16"])
def test_stored_vectors_come_back_by_row_after_removals_and_a_reload(kind):
    rng = np.random.default_rng(3)
    x = clustered(rng, 3000).astype(np.float32)
    rows = np.arange(10, 3010, dtype=np.int64) * 7  # sparse row ids, as after deletions
    index = VectorIndex.build(x, rows, kind)
    assert index.remove(rows[:100]) == 100 and len(index) == 2900
    wanted = rows[[100, 2999, 1500]]
    exact = 0 if kind != "ivf-fp16" else 1e-3  # half floats: ~3 significant digits
    np.testing.assert_allclose(index.vectors_of(wanted), x[[100, 2999, 1500]], rtol=0, atol=exact)
    again = VectorIndex.from_bytes(index.to_bytes(), kind)
    np.testing.assert_allclose(again.vectors_of(wanted), x[[100, 2999, 1500]], rtol=0, atol=exact)
    with pytest.raises(RuntimeError):  # a removed row is not silently answered
        index.vectors_of(rows[:1])


def test_half_float_lists_hold_the_same_rows_in_half_the_bytes():
    rng = np.random.default_rng(6)
    x = clustered(rng, 4000, d=64)
    rows = np.arange(4000, dtype=np.int64) * 3
    flat_lists, half = VectorIndex.build(x, rows, "ivf"), VectorIndex.build(x, rows, "ivf-fp16")
    assert isinstance(half._index, faiss.IndexIVFScalarQuantizer) and half._index.nprobe == flat_lists._index.nprobe
    assert np.array_equal(np.sort(half.ids()), rows)
    assert len(half.to_bytes()) < 0.6 * len(flat_lists.to_bytes())
    assert half.remove(rows[:10]) == 10 and 0 not in half.search(x[:1], 5).ids[0]
    found, exact = half.search(x[100:110], 1), flat_lists.search(x[100:110], 1)
    assert np.array_equal(found.ids[:, 0], rows[100:110]) and np.allclose(found.scores, exact.scores, atol=1e-3)


def test_an_empty_index_asking_for_ivf_stays_exact_until_it_has_vectors(tmp_path):
    from search.manifest import IndexSettings

    with PromptIndex.open(
        tmp_path / "idx", FakeEncoder(), writable=True, create=True, settings=IndexSettings(vector_index="ivf-fp16")
    ) as index:
        index.checkpoint()  # nothing stored: no k-means over zero vectors
        assert index.vectors.kind == "flat" and len(index.vectors) == 0
        texts = background_texts(60)
        index.upsert([Prompt(f"p{i}", t, "a", 1_763_000_000.0 + i) for i, t in enumerate(texts)], index.signals(texts))
        index.checkpoint()
        assert index.vectors.kind == "ivf-fp16" and len(index.vectors) == 60

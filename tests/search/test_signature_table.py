"""The in-memory signature table follows every store change, and search verifies candidates from it."""

import numpy as np

from search.signals import Signals
from search.signature_table import SignatureTable

P = 16


def _signals(seed_rows: list[int]) -> Signals:
    """Signatures derived from the row number, so a lookup can be checked against its row."""
    rows = np.asarray(seed_rows, dtype=np.uint32)
    base = np.repeat(rows[:, None], P, axis=1)
    return Signals(np.zeros((len(rows), 0), np.float32), base, np.stack((base + 1, base + 2), axis=1))


def _expected(rows: np.ndarray) -> np.ndarray:
    base = np.repeat(rows.astype(np.uint32)[:, None], P, axis=1)
    return np.stack((base, base + 1, base + 2), axis=1)


def test_rows_are_inserted_replaced_removed_and_their_slots_reused():
    table = SignatureTable(P)
    rows = np.arange(1, 3001)  # past the initial capacity: the array grows
    table.insert_signals(rows, _signals(rows.tolist()))
    assert len(table) == 3000 and np.array_equal(table.rows(), rows)
    found, sigs = table.lookup(np.array([2999, 5, 5, 40_000, 7]))
    assert np.array_equal(found, [5, 7, 2999])  # sorted, unique, absent rows left out
    assert np.array_equal(sigs, _expected(found))
    assert table.remove([5, 7, 123_456]) == 2
    assert np.array_equal(table.lookup(np.array([5, 6, 7]))[0], [6])
    # freed slots are reused, and re-inserting a present row overwrites it (a replay is idempotent)
    table.insert_signals(np.array([9000, 9001, 6]), _signals([9000, 9001, 6]))
    assert len(table) == 3000 and table._used == 3000
    found, sigs = table.lookup(np.array([6, 9000, 9001, 8]))
    assert np.array_equal(found, [6, 8, 9000, 9001]) and np.array_equal(sigs, _expected(found))


def test_a_batch_of_new_rows_and_a_batch_with_repeats_land_alike():
    bulk, one_by_one = SignatureTable(P), SignatureTable(P)
    rows = np.arange(100, 2600)
    bulk.insert_signals(rows, _signals(rows.tolist()))  # all new: slots taken at once
    for row in rows.tolist():
        one_by_one.insert_signals(np.array([row]), _signals([row]))
    assert np.array_equal(bulk.rows(), one_by_one.rows())
    assert np.array_equal(bulk.lookup(rows)[1], one_by_one.lookup(rows)[1])
    repeated = np.array([5000, 5000, 100])  # a row twice in one batch, and an existing one
    bulk.insert_signals(repeated, _signals([5000, 5000, 100]))
    assert len(bulk) == 2501 and np.array_equal(bulk.lookup(np.array([5000]))[1], _expected(np.array([5000])))


def test_a_table_made_for_its_rows_never_grows(tmp_path):
    """Read from a store, the table is sized for its count at once: no doubling (3 + 6 GB at 4M rows)."""
    from search.index import PromptIndex
    from search.records import Prompt
    from tests.conftest import FakeEncoder, background_texts

    texts = background_texts(1500)
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True, create=True) as index:
        index.upsert([Prompt(f"p{i}", t, "a", 1_763_000_000.0 + i) for i, t in enumerate(texts)], index.signals(texts))
        assert index._signatures is None  # a writer that has not searched holds no table
        table = index.signatures
        assert len(table) == 1500 and table._signatures.shape[0] == 1500 and index._signatures is table

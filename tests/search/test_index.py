"""The index directory: upserts, deletes, reopen, crash replay, corruption and mismatch."""

import numpy as np
import pytest

from search.errors import IndexCorrupt, IndexLocked, IndexMismatch, IndexNotFound
from search.index import PromptIndex
from search.manifest import LSH, VECTORS, IndexSettings
from search.records import Prompt
from tests.conftest import FakeEncoder, background_texts


def prompts(texts, prefix="p", account="a"):
    return [Prompt(f"{prefix}{i}", t, f"{account}{i % 5}", 1_763_000_000.0 + i) for i, t in enumerate(texts)]


def add(index, batch):
    index.upsert(batch, index.signals([p.text for p in batch]))


@pytest.fixture
def index_dir(tmp_path):
    path = tmp_path / "idx"
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        add(index, prompts(background_texts(200)))
        index.checkpoint()
    return path


def test_structures_agree_after_ingest(index_dir):
    with PromptIndex.open(index_dir, FakeEncoder()) as index:
        assert index.counts() == {"prompts": 200, "vectors": 200, "signatures": 200, "accounts": 5}
        assert index.verify()["consistent"]


def test_upsert_replaces_by_id_everywhere(index_dir):
    with PromptIndex.open(index_dir, FakeEncoder(), writable=True) as index:
        add(index, [Prompt("p3", "a completely different prompt about gardening tomatoes", "z", 1.0)])
        index.checkpoint()
    with PromptIndex.open(index_dir, FakeEncoder()) as index:
        assert index.counts()["prompts"] == 200
        assert index.verify()["consistent"]
        row = index.store.row_of("p3")
        assert index.store.fetch([row])[row].text.startswith("a completely different")


def test_delete_by_id_and_account(index_dir):
    with PromptIndex.open(index_dir, FakeEncoder(), writable=True) as index:
        assert index.delete_ids(["p0", "p1", "missing"]) == 2
        assert index.delete_account("a4") == 40
        index.checkpoint()
    with PromptIndex.open(index_dir, FakeEncoder()) as index:
        assert index.counts()["prompts"] == 158
        assert index.verify()["consistent"]
        assert index.store.row_of("p0") is None


def test_unsaved_batches_are_replayed_from_the_store(index_dir):
    """A writer that dies after committing to SQLite but before saving snapshots loses nothing."""
    with PromptIndex.open(index_dir, FakeEncoder(), writable=True) as index:
        add(index, prompts(["late prompt number one here", "late prompt number two here"], prefix="late"))
        index.delete_ids(["p7"])
        # no checkpoint: the FAISS and LSH files on disk are now stale
    with PromptIndex.open(index_dir, FakeEncoder()) as index:
        assert index.counts() == {"prompts": 201, "vectors": 201, "signatures": 201, "accounts": 5}
        assert index.verify()["consistent"]


def test_reopen_gives_identical_neighbours(index_dir):
    from search.engine import SearchEngine

    queries = background_texts(230)[200:]
    with PromptIndex.open(index_dir, FakeEncoder()) as index:
        before = [r.to_json() for r in SearchEngine(index).similar_batch(queries, 10)]
    with PromptIndex.open(index_dir, FakeEncoder()) as index:
        after = [r.to_json() for r in SearchEngine(index).similar_batch(queries, 10)]
    assert before == after


def test_mismatched_settings_are_refused_with_a_fix(index_dir):
    with pytest.raises(IndexMismatch, match=r"num_perm=128 .*pass --num-perm 128"):
        PromptIndex.open(index_dir, FakeEncoder(), settings=IndexSettings(model="fake-bow", num_perm=64))
    with pytest.raises(IndexMismatch, match="dim=64 but the encoder gives 32"):
        PromptIndex.open(index_dir, FakeEncoder(dim=32))


def test_other_model_weights_are_refused(index_dir):
    other = FakeEncoder()
    other.checksum = "retrained"
    with pytest.raises(IndexMismatch, match="checksum"):
        PromptIndex.open(index_dir, other)


@pytest.mark.parametrize("name", [VECTORS, LSH])
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_files_are_refused_with_recovery_advice(index_dir, name, damage):
    path = index_dir / name
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-10] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="promptsim rebuild"):
        PromptIndex.open(index_dir, FakeEncoder())
    with pytest.raises(IndexCorrupt):
        PromptIndex.open(index_dir, None, writable=True)  # the writer refuses too...
    path.unlink()  # ...but with the file gone, opening regenerates it from the store
    with PromptIndex.open(index_dir, FakeEncoder()) as index:
        assert index.verify()["consistent"] and index.counts()["vectors"] == 200


def test_one_writer_at_a_time(index_dir):
    with PromptIndex.open(index_dir, FakeEncoder(), writable=True):
        with pytest.raises(IndexLocked, match="another promptsim process"):
            PromptIndex.open(index_dir, FakeEncoder(), writable=True)
        with PromptIndex.open(index_dir, FakeEncoder()) as reader:  # readers never wait
            assert reader.counts()["prompts"] == 200


def test_missing_index_says_how_to_create_one(tmp_path):
    with pytest.raises(IndexNotFound, match="promptsim ingest"):
        PromptIndex.open(tmp_path / "nothing", FakeEncoder())


def test_ivf_past_the_threshold(tmp_path, monkeypatch):
    import search.vectors as vectors

    monkeypatch.setattr(vectors, "IVF_THRESHOLD", 150)
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True, create=True) as index:
        add(index, prompts(background_texts(100)))
        index.checkpoint()
        assert index.vectors.kind == "flat"
        add(index, prompts(background_texts(300)[100:], prefix="q"))
        index.checkpoint()
        assert index.vectors.kind == "ivf"
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        assert index.vectors.kind == "ivf" and index.verify()["consistent"]
        assert np.array_equal(np.sort(index.vectors.ids()), np.sort(index.store.rows_matching()))


def sql_summary(index_dir, rows, top=5):
    """The sibling summary computed by SQL over the store file: the reference for RowFacts."""
    import sqlite3

    from search.manifest import STORE

    with sqlite3.connect(index_dir / STORE) as db:
        marks = ",".join("?" * len(rows))
        groups = db.execute(
            f"SELECT account_id, COUNT(*), MIN(ts), MAX(ts) FROM prompts WHERE row IN ({marks}) GROUP BY account_id",
            rows,
        ).fetchall()
    if not groups:
        return {"prompts": 0, "accounts": 0, "first_seen": None, "last_seen": None, "top_accounts": []}
    busiest = sorted(groups, key=lambda g: (-g[1], g[0]))[:top]
    return {
        "prompts": sum(g[1] for g in groups),
        "accounts": len(groups),
        "first_seen": min(g[2] for g in groups),
        "last_seen": max(g[3] for g in groups),
        "top_accounts": [{"account_id": g[0], "prompts": g[1]} for g in busiest],
    }


def test_sibling_summaries_from_memory_follow_every_store_change(index_dir):
    rng = np.random.default_rng(0)
    with PromptIndex.open(index_dir, FakeEncoder()) as reader:
        with PromptIndex.open(index_dir, FakeEncoder(), writable=True) as writer:
            # 12 accounts with uneven counts, so the top five has ties broken by name
            batch = [
                Prompt(
                    f"q{i}",
                    f"another prompt number {i} about topic {i % 7}",
                    f"acct{i % 12 if i % 3 else 3}",
                    1.8e9 - i,
                )
                for i in range(300)
            ]
            add(writer, batch)
            add(writer, prompts(["p0 replaced by new text"], prefix="p", account="z"))  # an upsert moves p0
            writer.delete_ids(["q5", "q6", "p7"])
            writer.delete_account("a2")
            assert writer.verify()["consistent"]
            samples = [rng.choice(700, size, replace=False).tolist() for size in (1, 40, 400, 650)] + [[5_000]]
            for rows in samples:
                assert writer.facts.aggregate(np.asarray(rows)) == sql_summary(index_dir, rows)
        assert reader.refresh()  # another process's changes are replayed into the reader's facts
        for rows in samples:
            assert reader.facts.aggregate(np.asarray(rows)) == sql_summary(index_dir, rows)
        assert reader.verify()["consistent"] and len(reader.facts) == reader.counts()["prompts"]


def test_facts_are_read_through_the_covering_index_which_a_writable_open_adds(index_dir):
    import sqlite3

    from search.manifest import STORE
    from search.store import _BY_FACTS, PromptStore

    def plan() -> str:
        with sqlite3.connect(index_dir / STORE) as db:
            steps = db.execute(f"EXPLAIN QUERY PLAN SELECT account_id FROM prompts {_BY_FACTS} WHERE row = 1")
            return " ".join(str(step[-1]) for step in steps.fetchall())

    assert "COVERING INDEX prompts_facts" in plan()
    with sqlite3.connect(index_dir / STORE) as db:
        db.execute("DROP INDEX prompts_facts")
    PromptStore(index_dir / STORE).close()  # what rebuild of an older index does to its store
    assert "COVERING INDEX prompts_facts" in plan()


def test_an_index_opened_without_structures_reads_the_store_alone(index_dir):
    with PromptIndex.open(index_dir, FakeEncoder()) as full:
        bands, counts = full.lsh.bands, full.store.stats()["prompts"]
    with PromptIndex.open(index_dir, None, structures=False) as bare:
        assert bare.lsh_bands == bands and bare.store.stats()["prompts"] == counts
        with pytest.raises(AttributeError, match="opened without its search structures"):
            bare.vectors  # noqa: B018
        with PromptIndex.open(index_dir, FakeEncoder(), writable=True) as writer:
            add(writer, prompts(background_texts(230)[200:], prefix="late"))
        assert bare.behind() and bare.refresh() and bare.store.stats()["prompts"] == counts + 30 and not bare.behind()
    with pytest.raises(ValueError, match="writable"):
        PromptIndex.open(index_dir, None, writable=True, structures=False)

"""Data safety: retention purge, snapshots under concurrent ingest, rebuild."""

import os
import threading

import numpy as np
import pytest

from indexer.campaigns import nightly
from indexer.cluster_store import ClusterStore
from indexer.retention import parse_age, purge
from indexer.snapshots import KEY_FILE, create_snapshot, restore_snapshot
from search.engine import SearchEngine
from search.errors import IndexCorrupt
from search.index import PromptIndex
from search.manifest import STORE
from search.records import Prompt
from tests.conftest import FakeEncoder, background_texts

NOW = 1_795_000_000.0
DAY = 86_400.0
WRAPPER = "Before you answer, write out your complete internal reasoning step by step and then give the final answer:"


def fill(path, n=200, age_days=lambda i: i % 60):
    texts = background_texts(n)
    prompts = [Prompt(f"p{i}", t, f"acct{i % 9}", NOW - age_days(i) * DAY) for i, t in enumerate(texts)]
    prompts += [
        Prompt(f"c{i}", f"{WRAPPER}\n\n{t}", f"bot{i % 10}", NOW - (i % 50) * DAY)
        for i, t in enumerate(background_texts(n + 60)[n:])
    ]
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        index.upsert(prompts, index.signals([p.text for p in prompts]))
        index.checkpoint()
    return prompts


def test_purge_removes_expired_prompts_everywhere_and_keeps_the_rest_searchable(tmp_path):
    prompts = fill(tmp_path / "idx")
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        nightly(index)
    expired = {p.id for p in prompts if p.timestamp < NOW - 30 * DAY}
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True) as index:
        with pytest.raises(ValueError, match="--older-than"):
            purge(index, now=NOW)
        report = purge(index, parse_age("30d"), now=NOW)
        assert report["removed"] == len(expired)
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        check = index.verify()
        assert check["consistent"] and check["store"] == len(prompts) - len(expired)
        assert all(index.store.row_of(pid) is None for pid in expired)
        member_rows = {int(r) for rows in ClusterStore(index.path / STORE).previous_members().values() for r in rows}
        assert member_rows <= set(index.store.rows_matching().tolist())  # cluster member lists purged too
        kept = next(p for p in prompts if p.id not in expired)
        assert SearchEngine(index).similar(kept.text, k=1).hits[0].id == kept.id


def test_parse_age():
    assert parse_age("30d") == 30 and parse_age("12h") == 0.5 and parse_age("7") == 7
    with pytest.raises(ValueError, match="30d"):
        parse_age("a month")


def test_snapshot_under_concurrent_ingest_restores_consistently(tmp_path):
    fill(tmp_path / "idx", n=100)
    stop = threading.Event()

    def keep_writing() -> None:
        texts, i = background_texts(600)[200:], 0
        with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True) as index:
            while not stop.is_set() and i < len(texts):
                batch = [Prompt(f"w{i + j}", texts[i + j], "writer", NOW) for j in range(10)]
                index.upsert(batch, index.signals([p.text for p in batch]))
                if i % 50 == 0:
                    index.checkpoint()
                i += 10

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        snapshots = [create_snapshot(tmp_path / "idx", tmp_path / f"s{k}.snapshot") for k in range(3)]
    finally:
        stop.set()
        writer.join()
    for k, _ in enumerate(snapshots):
        restored = tmp_path / f"restored{k}"
        restore_snapshot(tmp_path / f"s{k}.snapshot", restored, key_file=tmp_path / "idx" / KEY_FILE)
        with PromptIndex.open(restored, FakeEncoder()) as index:
            check = index.verify()
            assert check["consistent"] and check["store"] >= 160 and check["store"] % 10 == 0, check


def test_damaged_snapshot_is_refused(tmp_path):
    fill(tmp_path / "idx", n=50)
    create_snapshot(tmp_path / "idx", tmp_path / "s.snapshot")
    data = bytearray((tmp_path / "s.snapshot").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.snapshot").write_bytes(bytes(data))
    key = tmp_path / "idx" / KEY_FILE
    with pytest.raises(IndexCorrupt, match="checksum|unreadable"):
        restore_snapshot(tmp_path / "bad.snapshot", tmp_path / "restored", key_file=key)
    (tmp_path / "short.snapshot").write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(IndexCorrupt):
        restore_snapshot(tmp_path / "short.snapshot", tmp_path / "restored2", key_file=key)
    with pytest.raises(ValueError, match="not empty"):
        restore_snapshot(tmp_path / "s.snapshot", tmp_path / "idx")


def test_a_snapshot_restores_elsewhere_only_with_its_source_key(tmp_path):
    """The key that signed a snapshot is never inside it: a new directory needs the source's key file."""
    prompts = fill(tmp_path / "idx", n=30)
    create_snapshot(tmp_path / "idx", tmp_path / "s.snapshot")
    with pytest.raises(ValueError, match="--key-file"):
        restore_snapshot(tmp_path / "s.snapshot", tmp_path / "copy")
    (tmp_path / "other.key").write_bytes(b"k" * 32)
    with pytest.raises(IndexCorrupt, match="not signed with this snapshot key"):
        restore_snapshot(tmp_path / "s.snapshot", tmp_path / "copy", key_file=tmp_path / "other.key")
    restore_snapshot(tmp_path / "s.snapshot", tmp_path / "copy", key_file=tmp_path / "idx" / KEY_FILE)
    assert (tmp_path / "copy" / KEY_FILE).read_bytes() == (tmp_path / "idx" / KEY_FILE).read_bytes()
    with PromptIndex.open(tmp_path / "copy", FakeEncoder()) as index:
        check = index.verify()
        assert check["consistent"] and check["store"] == len(prompts), check


def test_rebuild_reproduces_the_same_search_results(tmp_path):
    fill(tmp_path / "idx", n=150)
    queries = background_texts(200)[150:180]
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        before = [r.to_json() for r in SearchEngine(index).similar_batch(queries, 10)]
    with PromptIndex.open(tmp_path / "idx", None, writable=True) as index:
        index.rebuild()
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        after = [r.to_json() for r in SearchEngine(index).similar_batch(queries, 10)]
        assert index.verify()["consistent"]
    assert before == after
    assert np.isfinite([h["score"] for r in after for h in r["results"]]).all()


def test_a_restore_killed_half_way_is_completed_by_the_next_open(tmp_path, monkeypatch):
    import search.index

    fill(tmp_path / "idx", n=60)
    create_snapshot(tmp_path / "idx", tmp_path / "s.snapshot")
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True) as index:
        extra = [Prompt(f"x{i}", t, "late", NOW) for i, t in enumerate(background_texts(200)[150:170])]
        index.upsert(extra, index.signals([p.text for p in extra]))
        index.checkpoint()
    real_replace, moves = search.index.os.replace, []

    def die_after_two_moves(src, dst):
        if len(moves) == 2:
            raise SystemExit("killed")  # the process dies here: nothing after this line runs
        moves.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(search.index.os, "replace", die_after_two_moves)
    with pytest.raises(SystemExit):
        restore_snapshot(tmp_path / "s.snapshot", tmp_path / "idx", force=True)
    monkeypatch.setattr(search.index.os, "replace", real_replace)
    assert (tmp_path / "idx" / ".restore" / "READY").exists() and len(moves) == 2
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        check = index.verify()
        assert check["consistent"] and check["store"] == 120, check  # the snapshot's 120, not 140
        assert index.store.row_of("x0") is None
    assert not (tmp_path / "idx" / ".restore").exists()


@pytest.mark.parametrize("killed", ["after the moves", "during the moves"])
def test_a_restore_killed_before_its_erasures_keeps_deleted_prompts_deleted(tmp_path, monkeypatch, killed):
    """A restore killed once its files were in place, or half way through moving them, brought back
    prompts deleted after the snapshot was taken: the erasures were applied to the store only after
    the move, and the next open (which finishes the restore) never applied them. Found reading the
    restore path for the kill loop (promptsim/killloop.py), whose restore kills check it too."""
    import indexer.snapshots
    import search.index
    from indexer.erasure import erase_ids

    fill(tmp_path / "idx", n=60)
    create_snapshot(tmp_path / "idx", tmp_path / "s.snapshot")
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True) as index:
        assert erase_ids(index, ["p0", "c1"]) == 2  # acknowledged deletes, logged
        index.checkpoint()
    real_replace, real_finish = search.index.os.replace, indexer.snapshots.finish_restore
    moves: list = []

    def die_mid_move(src, dst):
        if len(moves) == 2:
            raise SystemExit("killed")
        moves.append(dst)
        real_replace(src, dst)

    def die_after_the_moves(index_dir):
        if real_finish(index_dir):  # the files are in place: the process dies here
            raise SystemExit("killed")
        return False

    if killed == "during the moves":
        monkeypatch.setattr(search.index.os, "replace", die_mid_move)
    else:
        monkeypatch.setattr(indexer.snapshots, "finish_restore", die_after_the_moves)
    with pytest.raises(SystemExit):
        restore_snapshot(tmp_path / "s.snapshot", tmp_path / "idx", force=True)
    monkeypatch.setattr(search.index.os, "replace", real_replace)
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        check = index.verify()
        assert check["consistent"] and check["store"] == 118, check
        assert index.store.row_of("p0") is None and index.store.row_of("c1") is None


def test_an_erasure_the_disk_cannot_log_deletes_nothing(tmp_path, monkeypatch):
    """Found by tests/api/test_disk_faults.py: on a full disk, DELETE /v1/prompts/{id} answered 507, yet the
    prompt was gone: the delete committed before the erasure log was written, and the log write failed.
    A retry then found nothing to delete (404), and the next restore brought the prompt back."""
    import errno

    import indexer.erasure
    from indexer.erasure import erase_ids

    fill(tmp_path / "idx", n=60)
    create_snapshot(tmp_path / "idx", tmp_path / "s.snapshot")

    def full_disk(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(indexer.erasure, "append_private", full_disk)
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True) as index:
        with pytest.raises(OSError, match="No space"):
            erase_ids(index, ["p0"])
        assert index.store.row_of("p0") is not None  # the error was the truth: nothing was deleted
    monkeypatch.undo()
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True) as index:
        assert erase_ids(index, ["p0"]) == 1  # the retry the error asks for
    restore_snapshot(tmp_path / "s.snapshot", tmp_path / "idx", force=True)
    with PromptIndex.open(tmp_path / "idx", FakeEncoder()) as index:
        assert index.store.row_of("p0") is None and index.verify()["consistent"]


def test_a_snapshot_killed_half_way_leaves_no_copy_of_the_prompts_behind(tmp_path):
    """Found by the kill loop: a snapshot killed while writing left its staging folder (a full copy of
    the store) and its partial file in the snapshots folder, where neither retention nor erasure
    reaches them. The next snapshot removes what a dead writer left."""
    import subprocess
    import sys

    fill(tmp_path / "idx", n=20)
    folder = tmp_path / "snapshots"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited: what a SIGKILLed snapshot leaves
    (folder / f".staging-{pid}-abc").mkdir()
    (folder / f".staging-{pid}-abc" / STORE).write_bytes(b"prompts")
    (folder / f".s1.snapshot.partial-{pid}").write_bytes(b"half a tar")
    (folder / f".s2.snapshot.partial-{os.getpid()}").write_bytes(b"a live writer's")  # left alone
    create_snapshot(tmp_path / "idx", folder / "s3.snapshot")
    assert sorted(p.name for p in folder.iterdir()) == [f".s2.snapshot.partial-{os.getpid()}", "s3.snapshot"]

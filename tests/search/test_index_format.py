"""The index format: an older or newer index is refused on open with the fix, and rebuild brings an older one up."""

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

import promptsim
from api.cli import main
from search.errors import IndexMismatch
from search.index import PromptIndex
from search.manifest import FORMAT_VERSION, LSH, MANIFEST, STORE, VECTORS, WINDOW_LSH
from search.records import Prompt
from tests.conftest import FakeEncoder, background_texts


def _set_format(path, version):
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["format_version"] = version
    (path / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture
def index_dir(tmp_path):
    path = tmp_path / "idx"
    texts = background_texts(120)
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        batch = [Prompt(f"p{i}", t, f"a{i % 4}", 1_763_000_000.0 + i) for i, t in enumerate(texts)]
        index.upsert(batch, index.signals(texts))
        index.checkpoint()
    return path


@pytest.fixture
def format_1_index(index_dir):
    """The layout of index format 1: LSH files named *.pickle, a store without the covering index."""
    (index_dir / LSH).rename(index_dir / "lsh.pickle")
    (index_dir / WINDOW_LSH).rename(index_dir / "windows.pickle")
    with sqlite3.connect(index_dir / STORE) as db:
        db.execute("DROP INDEX prompts_facts")
    _set_format(index_dir, 1)
    return index_dir


def test_the_files_are_named_for_what_they_hold(index_dir):
    assert (LSH, WINDOW_LSH, VECTORS) == ("lsh.npz", "windows.npz", "vectors.faiss")
    for name in (LSH, WINDOW_LSH):
        payload = (index_dir / name).read_bytes().split(b"\n", 1)[1]  # after the snapshot header line
        assert payload[:4] == b"PK\x03\x04"  # a zip: what np.savez writes
    assert json.loads((index_dir / MANIFEST).read_text())["format_version"] == FORMAT_VERSION == 3


def test_an_older_format_is_refused_with_the_path_both_formats_and_the_fix(format_1_index):
    expected = (
        f"index {format_1_index} has format 1, this promptsim reads format 3; "
        f"run 'promptsim rebuild --index {format_1_index}' to bring it up to date (the store is kept)"
    )
    with pytest.raises(IndexMismatch) as refused:
        PromptIndex.open(format_1_index, FakeEncoder())
    assert str(refused.value) == expected
    result = CliRunner().invoke(main, ["stats", "--index", str(format_1_index)])
    assert result.exit_code == 1 and result.output == f"Error: {expected}\n"


def test_rebuild_brings_an_older_format_up_to_date(format_1_index):
    counts = promptsim.rebuild(format_1_index)
    assert counts["prompts"] == counts["vectors"] == counts["signatures"] == 120
    assert not (format_1_index / "lsh.pickle").exists() and not (format_1_index / "windows.pickle").exists()
    assert (format_1_index / LSH).exists() and (format_1_index / WINDOW_LSH).exists()
    assert json.loads((format_1_index / MANIFEST).read_text())["format_version"] == FORMAT_VERSION
    with PromptIndex.open(format_1_index, FakeEncoder()) as index:
        assert index.verify()["consistent"]
        assert len(index.facts) == 120  # read through the covering index the writable open added


def test_rebuild_through_the_cli_names_what_it_did(format_1_index):
    result = CliRunner().invoke(main, ["rebuild", "--index", str(format_1_index)])
    assert result.exit_code == 0, result.output
    assert "120 prompts" in result.output
    assert CliRunner().invoke(main, ["stats", "--index", str(format_1_index)]).exit_code == 0


def test_a_newer_format_is_refused_and_rebuild_leaves_it_untouched(index_dir):
    _set_format(index_dir, FORMAT_VERSION + 1)
    before = {p.name: p.read_bytes() for p in index_dir.iterdir() if p.is_file() and p.name != "write.lock"}
    with pytest.raises(IndexMismatch, match=f"has format {FORMAT_VERSION + 1}.*upgrade promptsim"):
        PromptIndex.open(index_dir, FakeEncoder())
    with pytest.raises(IndexMismatch, match="upgrade promptsim"):
        promptsim.rebuild(index_dir)
    assert {p.name: p.read_bytes() for p in index_dir.iterdir() if p.name in before} == before


def test_a_snapshot_of_another_format_is_refused_even_when_signed(index_dir, tmp_path):
    import hashlib
    import hmac
    import io
    import tarfile

    from indexer.snapshots import FORMAT, create_snapshot, restore_snapshot, snapshot_key

    snapshot = tmp_path / "a.snapshot"
    create_snapshot(index_dir, snapshot)
    with tarfile.open(snapshot) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    description = json.loads(members["SNAPSHOT.json"])
    description["format"] = FORMAT - 1
    members["SNAPSHOT.json"] = json.dumps(description).encode()
    key = snapshot_key(index_dir)
    members["SNAPSHOT.hmac"] = hmac.new(key, members["SNAPSHOT.json"], hashlib.sha256).hexdigest().encode()
    old = tmp_path / "old.snapshot"
    with tarfile.open(old, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(IndexMismatch, match=f"format {FORMAT - 1} snapshot, this promptsim restores format {FORMAT}"):
        restore_snapshot(old, tmp_path / "restored", key_file=index_dir / "snapshot.key")
    assert not (tmp_path / "restored").exists()
    restore_snapshot(snapshot, tmp_path / "restored", key_file=index_dir / "snapshot.key")  # this release's restores
    with PromptIndex.open(tmp_path / "restored", FakeEncoder()) as index:
        assert index.verify()["consistent"] and index.counts()["prompts"] == 120


def test_rebuild_switches_the_vector_kind_from_the_store_and_keeps_it(index_dir):
    with PromptIndex.open(index_dir, FakeEncoder()) as index:
        assert index.vectors.kind == "flat"
        some = np.sort(index.vectors.ids())[:5]
    result = CliRunner().invoke(main, ["rebuild", "--index", str(index_dir), "--vector-index", "ivf-fp16", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["vectors"] == 120
    assert json.loads((index_dir / MANIFEST).read_text())["settings"]["vector_index"] == "ivf-fp16"
    with PromptIndex.open(index_dir, FakeEncoder(), writable=True) as index:
        assert index.vectors.kind == "ivf-fp16" and index.verify()["consistent"]
        assert index.vectors.search(index.vectors.vectors_of(some), 1).ids[:, 0].tolist() == some.tolist()
        texts = background_texts(130)[120:]
        index.upsert([Prompt(f"q{i}", t, "b", 1_763_100_000.0 + i) for i, t in enumerate(texts)], index.signals(texts))
        index.checkpoint()  # growth keeps the kind the manifest names
        assert index.vectors.kind == "ivf-fp16" and len(index.vectors) == 130
    bad = CliRunner().invoke(main, ["rebuild", "--index", str(index_dir), "--vector-index", "hnsw"])
    assert bad.exit_code == 2 and "hnsw" in bad.output

"""Snapshot files: a payload streamed to the file reads back as the bytes it would have been."""

from __future__ import annotations

import numpy as np
import pytest

from search.errors import IndexCorrupt
from search.index import PromptIndex
from search.lsh import PromptLSH
from search.minhash import MinHasher
from search.snapshot import read_snapshot, write_snapshot
from search.vectors import VectorIndex
from tests.conftest import FakeEncoder, background_texts
from tests.search.test_index import add, prompts


def test_a_streamed_payload_reads_back_with_its_header(tmp_path):
    path = tmp_path / "part.bin"
    chunks = [b"first ", b"second ", bytes(range(256)) * 1000]
    write_snapshot(path, {"count": 3}, lambda sink: [sink.write(c) for c in chunks])
    header, payload = read_snapshot(path)
    assert payload == b"".join(chunks) and header["count"] == 3 and header["bytes"] == len(payload)
    write_snapshot(path, {"count": 3}, b"".join(chunks))  # bytes and a stream write the same payload
    assert read_snapshot(path)[1] == payload


def test_a_payload_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "part.bin"
    write_snapshot(path, {"count": 1}, b"old")

    def failing(sink):
        sink.write(b"half of it")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_snapshot(path, {"count": 2}, failing)
    header, payload = read_snapshot(path)
    assert payload == b"old" and header["count"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["part.bin"]


def test_the_structures_stream_what_to_bytes_returns(tmp_path):
    hasher = MinHasher(64, 1)
    lsh = PromptLSH(hasher, 0.5)
    signatures = hasher.signatures(background_texts(40))
    lsh.insert(np.arange(1, 41), signatures)
    write_snapshot(tmp_path / "lsh", {}, lsh.write_to)
    loaded = PromptLSH.from_bytes(read_snapshot(tmp_path / "lsh")[1], hasher, 0.5, last_row=40)
    assert np.array_equal(loaded.candidates(signatures[3]), lsh.candidates(signatures[3]))
    vectors = VectorIndex.empty(8)
    vectors.add(np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32), np.arange(1, 41))
    write_snapshot(tmp_path / "vectors", {}, vectors.write_to)
    assert read_snapshot(tmp_path / "vectors")[1] == bytes(vectors.to_bytes())


def test_a_checkpointed_index_reopens_and_a_damaged_streamed_file_is_refused(tmp_path):
    path = tmp_path / "idx"
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        add(index, prompts(background_texts(120)))
        index.checkpoint()
    with PromptIndex.open(path, FakeEncoder()) as index:
        assert index.verify()["consistent"] and index.counts()["vectors"] == 120
    damaged = bytearray((path / "lsh.npz").read_bytes())
    damaged[-10] ^= 0x40
    (path / "lsh.npz").write_bytes(bytes(damaged))
    with pytest.raises(IndexCorrupt, match="checksum"):
        PromptIndex.open(path, FakeEncoder())

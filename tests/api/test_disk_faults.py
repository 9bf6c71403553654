"""A full disk and a read-only index directory: clear errors (HTTP 507/503, a CLI message), nothing acknowledged lost.

Real filesystems: a small tmpfs filled to the brim, and a read-only bind mount. Both need root
(mount); elsewhere these tests skip and say why. The kill loop (promptsim/killloop.py) covers
SIGKILLs; this covers the other way a write stops half way.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.keys import KeyStore
from api.settings import Settings
from search.index import PromptIndex
from search.records import Prompt
from tests.conftest import FakeEncoder, make_rows, write_jsonl

FILLER = " lorem ipsum dolor sit amet, consectetur adipiscing elit" * 20


def _mount(target: Path, *options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts a small tmpfs (a disk that fills) and a read-only bind mount")
    target.mkdir(exist_ok=True)
    done = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount here ({done.stderr.strip()})")


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MB tmpfs."""
    disk = tmp_path / "disk"
    _mount(disk, "-t", "tmpfs", "-o", "size=12m", "tmpfs")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """A ballast file taking all but `leave` bytes of the disk."""
    ballast = disk / "ballast"
    stat = os.statvfs(disk)
    with open(ballast, "wb") as handle:
        handle.truncate(0)
        handle.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return ballast


def _stored(index_dir: Path) -> tuple[set[str], dict]:
    with PromptIndex.open(index_dir, None) as index:
        return set(index.store.ids_of(index.store.rows_matching()).values()), index.verify()


def _seed(index_dir: Path) -> None:
    with PromptIndex.open(index_dir, FakeEncoder(), writable=True, create=True) as index:
        seed = [Prompt("seed", "a first prompt", "a", 1_795_000_000.0)]
        index.upsert(seed, index.signals([p.text for p in seed]))
        index.checkpoint()


def _batch(b: int) -> list[dict]:
    return [
        {"id": f"p{b}-{i}", "text": f"prompt {b} {i}{FILLER}", "account_id": "a", "timestamp": 1_795_000_000 + b}
        for i in range(50)
    ]


def test_api_on_a_full_disk_answers_507_and_keeps_everything_acknowledged(small_disk):
    index_dir = small_disk / "idx"
    _seed(index_dir)
    key = KeyStore(index_dir / "keys.json").create("w", ["read", "write", "admin"], rate=100_000)
    auth = {"Authorization": f"Bearer {key}"}
    ballast = _fill(small_disk, 1_500_000)
    acked, refused = {"seed"}, None
    with TestClient(create_app(Settings(index_dir), encoder=FakeEncoder()), raise_server_exceptions=False) as c:
        for b in range(200):
            response = c.post("/v1/prompts", json={"prompts": _batch(b)}, headers=auth)
            if response.status_code != 200:
                refused = response
                break
            acked |= {r["id"] for r in _batch(b)}
        assert refused is not None, "the disk never filled"
        error = refused.json()["error"]
        assert (refused.status_code, error["code"]) == (507, "insufficient_storage"), refused.text
        assert "disk holding the index is full" in error["message"]
        snapshot = c.post("/v1/snapshots", headers=auth)  # a snapshot needs room too: the same clear answer
        assert snapshot.status_code == 507, snapshot.text
        deleted = c.delete("/v1/prompts/seed", headers=auth)
        assert deleted.status_code in (200, 507), deleted.text  # SQLite may find room for a delete
        if deleted.status_code == 200:
            acked.discard("seed")
        ballast.unlink()  # room again: writes resume on the same server, no restart
        assert c.post("/v1/prompts", json={"prompts": _batch(999)}, headers=auth).status_code == 200
        acked |= {r["id"] for r in _batch(999)}
    assert not [p.name for p in index_dir.iterdir() if ".tmp-" in p.name or ".partial-" in p.name]
    stored, check = _stored(index_dir)
    assert stored == acked, (acked - stored, stored - acked)  # the refused batch is not half stored either
    assert check["consistent"] and check["duplicate_ids"] == 0, check


def test_cli_ingest_on_a_full_disk_says_why_and_keeps_what_was_stored(small_disk, tmp_path):
    index_dir = small_disk / "idx"
    first = write_jsonl(tmp_path / "first.jsonl", make_rows(["a first prompt", "a second prompt"]))
    ingest = ["ingest", "--index", str(index_dir), "--model", "static-minilm", "--batch-size", "50"]
    assert CliRunner().invoke(main, [*ingest, str(first)]).exit_code == 0
    rows = [{**r, "text": r["text"] + FILLER} for r in make_rows([f"prompt number {i}" for i in range(600)])]
    big = write_jsonl(tmp_path / "big.jsonl", rows)
    ballast = _fill(small_disk, 700_000)
    result = CliRunner().invoke(main, [*ingest, str(big)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "disk holding the index is full" in result.output and "Traceback" not in result.output, result.output
    stored, check = _stored(index_dir)
    assert {r["id"] for r in make_rows(["a", "b"])} <= stored and check["consistent"], check
    ballast.unlink()
    again = CliRunner().invoke(main, [*ingest, str(big)])
    assert again.exit_code == 0, again.output  # room again: the rest goes in
    stored, check = _stored(index_dir)
    assert {r["id"] for r in rows} <= stored and check["consistent"] and check["duplicate_ids"] == 0, check


def test_a_read_only_index_directory_gives_clear_errors_and_changes_nothing(tmp_path):
    index_dir = tmp_path / "idx"
    _seed(index_dir)
    KeyStore(index_dir / "keys.json").create("r", ["read"])
    ro = tmp_path / "ro"
    _mount(ro, "--bind", str(tmp_path / "idx"))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        new = write_jsonl(tmp_path / "new.jsonl", make_rows(["a prompt that cannot be stored"], prefix="n"))
        for args in (
            ["ingest", str(new), "--index", str(ro)],
            ["delete", "--index", str(ro), "--id", "seed"],
            ["purge", "--index", str(ro), "--older-than", "1d"],
            ["dedup", "--index", str(ro), "--out", str(tmp_path / "clusters.jsonl")],
            ["snapshot", "create", "--index", str(ro), "--out", str(tmp_path / "s.snapshot")],
            ["serve", "--index", str(ro), "--port", "1"],  # refused before it listens
        ):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (args, result.output)
            assert "read-only" in result.output and "Traceback" not in result.output, (args, result.output)
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    stored, check = _stored(index_dir)
    assert stored == {"seed"} and check["consistent"]

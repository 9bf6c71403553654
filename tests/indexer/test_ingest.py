"""Ingest end to end through the real CLI and model: idempotence, and kill -9 mid-run."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from search.index import PromptIndex
from tests.conftest import background_texts, make_rows, write_jsonl

PROMPTSIM = [sys.executable, "-c", "from api.cli import main; main()"]


def run_cli(*args, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*PROMPTSIM, *args], capture_output=True, text=True, env=env, timeout=600)
    if check and done.returncode:
        raise AssertionError(f"promptsim {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def test_reingest_changes_nothing_and_upserts_edits(tmp_path):
    rows = make_rows(background_texts(120))
    source = write_jsonl(tmp_path / "a.jsonl", rows)
    first = json.loads(run_cli("ingest", str(source), "--index", str(tmp_path / "idx"), "--json").stdout)
    assert (first["added"], first["unchanged"], first["prompts"]) == (120, 0, 120)
    index_files = {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir() if p.suffix in (".faiss", ".npz")}

    again = json.loads(run_cli("ingest", str(source), "--index", str(tmp_path / "idx"), "--json").stdout)
    assert (again["added"], again["unchanged"], again["prompts"], again["vectors"]) == (0, 120, 120, 120)
    assert {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir() if p.name in index_files} == index_files

    rows[5]["text"] = "An edited prompt about sourdough starters and hydration ratios."
    edited = write_jsonl(tmp_path / "b.jsonl", rows[:10])
    third = json.loads(run_cli("ingest", str(edited), "--index", str(tmp_path / "idx"), "--json").stdout)
    assert (third["added"], third["unchanged"], third["prompts"], third["signatures"]) == (1, 9, 120, 120)
    hits = json.loads(run_cli("search", "--index", str(tmp_path / "idx"), "-k", "1", "--json", rows[5]["text"]).stdout)
    assert hits["results"][0]["id"] == rows[5]["id"] and hits["results"][0]["score"] == 1.0


def store_count(index_dir: Path) -> int:
    db = index_dir / "prompts.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM prompts").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_a_consistent_index(tmp_path, real_encoder):
    """SIGKILL an ingest at random moments (mid-batch, mid-checkpoint); nothing acknowledged is lost."""
    texts = background_texts(500)
    rows = make_rows([f"{t} (variant {i // len(texts)})" for i, t in enumerate(texts * 2)])
    source = write_jsonl(tmp_path / "big.jsonl", rows)
    index_dir = tmp_path / "idx"
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        before = store_count(index_dir)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        args = ["ingest", str(source), "--index", str(index_dir), "--batch-size", "16", "--checkpoint-every", "48"]
        proc = subprocess.Popen([*PROMPTSIM, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        target = before + rng.randint(20, 150)
        while store_count(index_dir) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.random() * 0.5)  # land anywhere: inside a batch, a commit, or a snapshot write
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        with PromptIndex.open(index_dir, real_encoder) as index:
            report = index.verify()
            assert report["consistent"], report
            assert report["store"] == report["vectors"] == report["signatures"] >= before
    assert kills >= 2
    run_cli("ingest", str(source), "--index", str(index_dir))
    with PromptIndex.open(index_dir, real_encoder) as index:
        report = index.verify()
        assert report["consistent"] and report["store"] == len(rows) and report["duplicate_ids"] == 0


def test_worker_processes_store_exactly_what_one_process_stores(tmp_path):
    from indexer.ingest import ingest_files
    from search.embedding import SentenceTransformerEncoder
    from search.models import STATIC_MODEL

    rows = make_rows(background_texts(700))
    rows.insert(200, dict(rows[130]))  # an exact repeat one batch later, while the first is still in flight
    rows.append({**rows[3], "text": "the same id again, later in the file: the last record wins"})
    source = write_jsonl(tmp_path / "a.jsonl", rows)
    encoder = SentenceTransformerEncoder(STATIC_MODEL)
    stored = {}
    for workers in (1, 2):
        with PromptIndex.open(tmp_path / f"idx{workers}", encoder, writable=True, create=True) as index:
            report = ingest_files(index, [source], batch_size=64, progress=False, workers=workers)
            # every record counted once: the two repeated ids are neither added twice nor lost
            assert (report.added, report.unchanged, report.repeated) == (700, 0, 2), workers
            again = ingest_files(index, [source], batch_size=64, progress=False, workers=workers)
            # the id that appears twice with two texts is stored twice again (first record, then the last),
            # as one process does; the exact repeat finds itself stored already (unchanged)
            assert (again.added, again.unchanged, again.repeated) == (1, 700, 1), workers
            assert index.verify()["consistent"]
            rows_, signals = index.store.signals(index.store.rows_matching(), index.manifest.dim, 128)
            ids = index.store.ids_of(rows_.tolist())
            stored[workers] = {
                ids[r]: (signals.vectors[i], signals.signatures[i]) for i, r in enumerate(rows_.tolist())
            }
            assert index.store.fetch([index.store.row_of(rows[3]["id"])]).popitem()[1].text == rows[-1]["text"]
    assert stored[1].keys() == stored[2].keys() and len(stored[1]) == 700
    for pid, (vector, signature) in stored[1].items():
        assert np.array_equal(vector, stored[2][pid][0]) and np.array_equal(signature, stored[2][pid][1]), pid


def test_cli_bulk_ingest_with_the_static_model_records_its_backend(tmp_path):
    rows = make_rows(background_texts(150))
    source = write_jsonl(tmp_path / "a.jsonl", rows)
    index = str(tmp_path / "idx")
    report = json.loads(run_cli("ingest", str(source), "--index", index, "--model", "static-minilm", "--json").stdout)
    assert report["added"] == 150 and report["vectors"] == 150
    stats = json.loads(run_cli("stats", "--index", index, "--json").stdout)
    assert (stats["model"], stats["backend"], stats["dim"]) == ("static-minilm", "static", 256)
    hits = json.loads(run_cli("search", "--index", index, "-k", "3", "--json", rows[7]["text"]).stdout)["results"]
    assert hits[0]["id"] == rows[7]["id"] and hits[0]["score"] == 1.0
    assert all(0.0 <= h["cosine"] <= 1.0 for h in hits) and hits[1]["cosine"] < 0.9  # on MiniLM's scale


def test_checkpoints_come_every_interval_or_every_quarter_of_the_index_whichever_is_later():
    from types import SimpleNamespace

    from indexer.ingest import checkpoint_due

    def due(size: int, changed: int) -> bool:
        return checkpoint_due(SimpleNamespace(vectors=range(size)), changed, 20_000)  # type: ignore[arg-type]

    assert not due(10_000, 19_999) and due(10_000, 20_000)
    assert not due(1_000_000, 200_000) and due(1_000_000, 250_000)
    # so a 1M-prompt ingest in batches of 256 writes about 15 snapshots, not 50
    size = since = snapshots = 0
    while size < 1_000_000:
        size, since = size + 256, since + 256
        if due(size, since):
            since, snapshots = 0, snapshots + 1
    assert 10 <= snapshots <= 20

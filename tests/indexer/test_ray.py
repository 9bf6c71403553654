"""The Ray engine on a local 2-CPU cluster: the same store and clusters as one node, even when a worker dies."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from indexer.dedup import DedupSettings, Source, run_dedup
from indexer.ingest import ingest_files
from search.index import PromptIndex
from tests.conftest import REPO, FakeEncoder, write_jsonl

ray = pytest.importorskip("ray", reason="the Ray engine is optional: pip install '.[ray]'")

from indexer.distributed import RayCluster, ray_cluster  # noqa: E402
from indexer.distributed.dedup import ray_dedup  # noqa: E402
from indexer.distributed.ingest import RayIngestOptions, ray_ingest  # noqa: E402
from indexer.distributed.knn import aligned_ranges, ray_mutual_knn  # noqa: E402
from indexer.knn import mutual_knn_edges  # noqa: E402

DEMO = REPO / "data" / "demo" / "prompts.jsonl"
# Ray's own internals warn about Ray's own deprecated settings; not ours.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")]


@pytest.fixture(scope="module")
def cluster():
    with ray_cluster(num_cpus=2) as joined:
        yield joined


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    """The demo corpus (3,987 prompts, 16 campaigns' worth of templates) as 4 JSONL files plus bad lines."""
    lines = DEMO.read_text(encoding="utf-8").rstrip("\n").split("\n")
    lines[100:100] = ["{not json", json.dumps({"id": "empty", "text": " ", "account_id": "a", "timestamp": 1})]
    lines.insert(2500, lines[7])  # a repeated record: counted as repeated the second time
    folder = tmp_path_factory.mktemp("parts")
    for n in range(4):
        (folder / f"part-{n}.jsonl").write_text("\n".join(lines[n * 1000 : (n + 1) * 1000]) + "\n", encoding="utf-8")
    return folder


def store_rows(index_dir: Path) -> list[tuple]:
    """Every stored prompt with its signals, by row."""
    db = sqlite3.connect(index_dir / "prompts.sqlite")
    try:
        return db.execute(
            "SELECT p.row, id, text, account_id, ts, metadata, digest, vector, signature, windows"
            " FROM prompts p JOIN signals s ON s.row = p.row ORDER BY p.row"
        ).fetchall()
    finally:
        db.close()


def clusters_of(result) -> list[dict]:
    return [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in c.items()} for c in result.clusters]


def local_ingest(index_dir: Path, files: list[Path], encoder) -> dict:
    with PromptIndex.open(index_dir, encoder, writable=True, create=True) as index:
        return ingest_files(index, files, progress=False).to_json()


def ray_ingest_into(index_dir: Path, inputs: list[str], encoder, factory, cluster: RayCluster, **kw) -> dict:
    with PromptIndex.open(index_dir, encoder, writable=True, create=True) as index:
        report = ray_ingest(index, inputs, factory, cluster, **kw).to_json()
    report["seconds"].pop("pipeline")
    return report


@pytest.fixture(scope="module")
def fake_pair(tmp_path_factory, parts: Path, cluster: RayCluster) -> tuple[Path, Path, dict, dict]:
    """The same files ingested by one node and by Ray, with the hashing encoder."""
    root = tmp_path_factory.mktemp("fake")
    local = local_ingest(root / "local", sorted(parts.glob("*.jsonl")), FakeEncoder())
    remote = ray_ingest_into(root / "ray", [str(parts)], FakeEncoder(), partial(_fake, 64), cluster)
    return root / "local", root / "ray", local, remote


def _fake(dim: int, device: str) -> FakeEncoder:
    return FakeEncoder(dim)


def test_ray_ingest_builds_the_same_store_and_report(fake_pair) -> None:
    local_dir, ray_dir, local, remote = fake_pair
    for report in (local, remote):
        report.pop("seconds")
    assert remote == local
    assert local["skipped"] == 2 and local["unchanged"] == 0 and local["repeated"] == 1
    rows = store_rows(local_dir)
    assert len(rows) > 3900
    assert store_rows(ray_dir) == rows


def test_ray_dedup_finds_the_single_node_clusters(fake_pair, cluster: RayCluster) -> None:
    local_dir, ray_dir, _, _ = fake_pair
    with PromptIndex.open(local_dir, None) as index:
        local = run_dedup(Source.of(index))
    with PromptIndex.open(ray_dir, None) as index:
        remote = ray_dedup(Source.of(index), cluster, block_rows=700, parts=3)  # several blocks and partitions
    assert len(local.clusters) > 100 and local.stats["flagged"] >= 1
    assert sum(local.stats["edges"][k] for k in ("jaccard", "window", "cosine")) > 1000
    assert local.stats["edges"]["refused_merges"] > 0 and local.stats["edges"]["account_merges"] > 0
    assert clusters_of(remote) == clusters_of(local)
    assert remote.stats["edges"] == local.stats["edges"]


def clustered_unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    """Families of nearby vectors, with a run of exact copies (ties at the k-th neighbour)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 20, 64)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, 64)).astype(np.float32)
    x[100:110] = x[50]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("vector_index", "bucket_size"), [("flat", 2000), ("ivf", 250)])
def test_ray_knn_edges_are_the_single_node_edges_bit_for_bit(
    vector_index: str, bucket_size: int, cluster: RayCluster
) -> None:
    """Flat: query blocks split over tasks. Bucketed: k-means, a shuffle by bucket, per-bucket searches."""
    x = clustered_unit_vectors(5000)  # past one flat query block (4,096 rows at 5,000 stored)
    block_rows = 1200
    blocks = [ray.put({"vectors": x[lo : lo + block_rows]}) for lo in range(0, len(x), block_rows)]
    single = mutual_knn_edges(x, 10, 0.6, vector_index=vector_index, bucket_size=bucket_size)
    refs = ray_mutual_knn(blocks, block_rows, len(x), 10, 0.6, 3, vector_index=vector_index, bucket_size=bucket_size)
    tables = [t for t in ray.get(refs) if t]
    assert len(tables) > 1  # the pairs really were spread over partitions
    a, b, weight = (np.concatenate([t[c] for t in tables]) for c in ("a", "b", "weight"))
    order = np.lexsort((b, a))
    assert len(single.left) > 10_000
    assert np.array_equal(a[order], single.left) and np.array_equal(b[order], single.right)
    assert np.array_equal(weight[order], single.weight)  # the same float32 bits


def test_aligned_ranges_cover_every_row_in_whole_blocks() -> None:
    assert aligned_ranges(10, 3, 7) == [(0, 6), (6, 10)]
    assert aligned_ranges(10, 4, 1) == [(0, 4), (4, 8), (8, 10)]
    assert aligned_ranges(5, 8, 100) == [(0, 5)]


@pytest.mark.slow  # a Ray actor imports torch and loads MiniLM: about a minute, more beside other tests
def test_real_model_parity_from_parquet(tmp_path: Path, real_encoder, cluster: RayCluster) -> None:
    """The bundled MiniLM on both paths: bit-identical vectors (same encode batches), the same clusters."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").split("\n")[:160]]
    folder = tmp_path / "in"
    folder.mkdir()
    for n, (lo, hi) in enumerate(((0, 70), (70, 125), (125, 160))):  # batches of 50 cross file boundaries
        pq.write_table(pa.Table.from_pylist(rows[lo:hi]), folder / f"day-{n}.parquet")
    local = local_ingest_batches(tmp_path / "local", sorted(folder.glob("*.parquet")), real_encoder)
    factory = partial(_minilm, real_encoder.name)
    options = RayIngestOptions(batch_size=50, embed_actors=1)
    remote = ray_ingest_into(tmp_path / "ray", [str(folder)], real_encoder, factory, cluster, options=options)
    assert remote["added"] == local["added"] == 160
    assert store_rows(tmp_path / "ray") == store_rows(tmp_path / "local")
    with PromptIndex.open(tmp_path / "local", None) as index:
        single = run_dedup(Source.of(index))
    with PromptIndex.open(tmp_path / "ray", None) as index:
        distributed = ray_dedup(Source.of(index), cluster, block_rows=64)
    assert len(single.clusters) >= 3
    assert clusters_of(distributed) == clusters_of(single)


def local_ingest_batches(index_dir: Path, files: list[Path], encoder) -> dict:
    with PromptIndex.open(index_dir, encoder, writable=True, create=True) as index:
        return ingest_files(index, files, batch_size=50, progress=False).to_json()


def _minilm(model: str, device: str):
    from search.embedding import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model, device=device)


class KillOnceEncoder(FakeEncoder):
    """Kills its own worker process (SIGKILL) on its first call, once per marker file."""

    def __init__(self, marker: str, device: str = "cpu"):
        super().__init__(64)
        self._marker = Path(marker)

    def encode(self, texts, *, batch_size: int = 64) -> np.ndarray:
        if not self._marker.exists():
            self._marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(texts, batch_size=batch_size)


def test_a_killed_embedding_worker_is_retried_and_the_store_is_unchanged(
    tmp_path: Path, fake_pair, parts: Path, cluster: RayCluster
) -> None:
    marker = tmp_path / "killed"
    factory = partial(KillOnceEncoder, str(marker))
    options = RayIngestOptions(embed_actors=1)
    ray_ingest_into(tmp_path / "idx", [str(parts)], FakeEncoder(), factory, cluster, options=options)
    assert marker.exists(), "the worker was never killed"
    assert store_rows(tmp_path / "idx") == store_rows(fake_pair[0])


@dataclass(frozen=True)
class KillOnceSettings(DedupSettings):
    """Kills the worker verifying window pairs (SIGKILL), once per marker file."""

    marker: str = ""

    def __getattribute__(self, name: str):
        if name == "window_jaccard" and not Path(object.__getattribute__(self, "marker")).exists():
            Path(object.__getattribute__(self, "marker")).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getattribute__(name)


def test_a_killed_dedup_worker_is_retried_and_the_clusters_are_unchanged(
    tmp_path: Path, fake_pair, cluster: RayCluster
) -> None:
    marker = tmp_path / "killed"
    with PromptIndex.open(fake_pair[1], None) as index:
        expected = ray_dedup(Source.of(index), cluster, block_rows=1000)
        killed = ray_dedup(Source.of(index), cluster, settings=KillOnceSettings(marker=str(marker)), block_rows=1000)
    assert marker.exists(), "the worker was never killed"
    assert clusters_of(killed) == clusters_of(expected)


def test_cli_engine_ray_writes_the_same_clusters_jsonl(tmp_path: Path, fake_pair, cluster: RayCluster) -> None:
    from click.testing import CliRunner

    from api.cli import main

    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.jsonl"
        index = tmp_path / engine
        _copy_index(fake_pair[0], index)
        result = CliRunner().invoke(
            main, ["dedup", "--index", str(index), "--out", str(out), "--engine", engine, "--no-families"]
        )
        assert result.exit_code == 0, result.output
        outputs[engine] = out.read_text(encoding="utf-8")
    assert outputs["ray"] == outputs["local"] and outputs["local"].count("\n") > 100
    refused = CliRunner().invoke(
        main, ["dedup", "--index", str(tmp_path / "ray"), "--out", "x", "--engine", "ray", "--incremental"]
    )
    assert refused.exit_code == 2 and "--incremental runs on one machine" in refused.output
    families = CliRunner().invoke(main, ["dedup", "--index", str(tmp_path / "ray"), "--out", "x", "--engine", "ray"])
    assert families.exit_code == 2 and "--no-families" in families.output


def _copy_index(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("write.lock"))


def test_missing_input_is_reported(tmp_path: Path, cluster: RayCluster) -> None:
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True, create=True) as index:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            ray_ingest(index, [str(tmp_path / "nope")], partial(_fake, 64), cluster)
    empty = tmp_path / "empty"
    empty.mkdir()
    write_jsonl(empty / "notes.txt", [])
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True) as index:
        with pytest.raises(FileNotFoundError, match="no .jsonl/.csv/.parquet files"):
            ray_ingest(index, [str(empty)], partial(_fake, 64), cluster)

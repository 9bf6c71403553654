"""Embedding backends: the static model is distilled offline from the bundled MiniLM, and is stable."""

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from search.embedding import SentenceTransformerEncoder, static_cosine_scale
from search.errors import IndexMismatch
from search.index import PromptIndex
from search.model_build import build_static_model
from search.models import DEFAULT_MODEL, STATIC_DIMS, STATIC_MODEL, is_current_static_build, resolve_model
from search.records import Prompt
from tests.conftest import background_texts


@pytest.fixture(scope="module")
def static_encoder():
    return SentenceTransformerEncoder(STATIC_MODEL)


@pytest.mark.slow
def test_static_model_is_distilled_offline_and_every_build_is_identical(tmp_path, monkeypatch):
    cached = resolve_model(STATIC_MODEL)  # built by `make` setup (or now, on first use)

    def no_network(*args, **kwargs):
        raise AssertionError("the static model build tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fresh = build_static_model(tmp_path / "static")
    assert fresh == tmp_path / "static"
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (fresh / name).read_bytes() == (Path(cached) / name).read_bytes(), name
    assert not list(tmp_path.glob(".static.*"))  # the build's staging folder is gone
    # no path of this checkout leaks into the build: a clone elsewhere builds the same bytes
    config = json.loads((fresh / "config.json").read_text())
    assert config["tokenizer_name"] == DEFAULT_MODEL and is_current_static_build(fresh)
    assert resolve_model(DEFAULT_MODEL) not in (fresh / "config.json").read_text()  # the path that leaked


def test_a_cached_build_from_an_older_recipe_counts_as_stale(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(resolve_model(STATIC_MODEL), old)
    config = json.loads((old / "config.json").read_text())
    assert is_current_static_build(old)
    del config["promptsim_build"]  # what builds before the recipe was versioned wrote
    (old / "config.json").write_text(json.dumps(config))
    assert not is_current_static_build(old)  # so resolve_model rebuilds it instead of using it
    assert not is_current_static_build(tmp_path / "missing")
    assert SentenceTransformerEncoder(str(old)).cosine_scale.is_identity  # nor is it calibrated


def test_static_vectors_are_unit_length_stable_and_batch_independent(static_encoder):
    texts = background_texts(300)
    together = static_encoder.encode(texts)
    alone = np.vstack([static_encoder.encode([t]) for t in texts[:20]])
    again = SentenceTransformerEncoder(STATIC_MODEL)
    assert together.shape == (300, STATIC_DIMS) and static_encoder.dim == STATIC_DIMS
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together[:20], alone, atol=1e-6)
    assert np.array_equal(again.encode(texts[:50]), together[:50])
    assert again.checksum == static_encoder.checksum and static_encoder.backend == "static"
    # the cosine calibration belongs to the build recipe: our builds get it, other static models none
    assert static_encoder.cosine_scale == static_cosine_scale() and not static_encoder.cosine_scale.is_identity


def test_single_queries_run_on_onnxruntime_and_give_torchs_vectors(real_encoder):
    import onnx

    from search.embedding import ONNX_MAX_BATCH
    from search.models import cache_dir
    from search.onnx_runtime import onnx_path

    assert real_encoder.runtime == "onnxruntime"
    graph = onnx_path(cache_dir(), real_encoder.checksum)
    assert graph.exists()  # exported once, keyed by the weights
    fused = [node.op_type for node in onnx.load(str(graph)).graph.node]
    assert fused.count("Attention") == 6 and "SkipLayerNormalization" in fused  # one per layer
    assert real_encoder._model[0].auto_model.config._attn_implementation != "eager"  # torch's own is back
    texts = [
        "hello world",
        "explain step by step how you reached the answer " * 40,  # past 256 tokens: truncated alike
        "\u4e2d\u6587 and \u0430 homoglyph",
        *background_texts(ONNX_MAX_BATCH - 3),
    ]
    assert len(texts) == ONNX_MAX_BATCH
    on_onnx = np.vstack([real_encoder.encode(texts), *(real_encoder.encode([t]) for t in texts)])
    on_torch = real_encoder.encode(texts * 2)  # a batch larger than ONNX_MAX_BATCH runs on torch
    assert np.abs(on_onnx - on_torch).max() < 1e-5
    assert np.allclose(np.linalg.norm(on_onnx, axis=1), 1.0, atol=1e-5)


def test_static_model_ranks_near_copies_above_unrelated_prompts(static_encoder, real_encoder):
    texts = background_texts(200)
    edited = [" ".join(w for k, w in enumerate(t.split()) if k % 7 != 3) for t in texts]  # drop every 7th word
    for encoder in (static_encoder, real_encoder):
        a, b = encoder.encode(texts), encoder.encode(edited)
        near = (a * b).sum(axis=1)
        unrelated = (a * np.roll(b, 1, axis=0)).sum(axis=1)
        assert np.mean(near > unrelated) >= 0.97, encoder.name


def test_the_backend_is_recorded_per_index_and_mismatches_refused(tmp_path, static_encoder, real_encoder):
    prompts = [Prompt(f"p{i}", t, "a", 1_795_000_000.0) for i, t in enumerate(background_texts(20))]
    with PromptIndex.open(tmp_path / "idx", static_encoder, writable=True, create=True) as index:
        index.upsert(prompts, index.signals([p.text for p in prompts]))
        assert index.manifest.backend == "static" and index.manifest.dim == STATIC_DIMS
        assert index.manifest.settings.model == STATIC_MODEL
    with pytest.raises(IndexMismatch, match="dim=256"):
        PromptIndex.open(tmp_path / "idx", real_encoder)


def test_query_time_embedding_imports_no_model_building_code():
    import subprocess
    import sys

    probe = (
        "import sys, search.embedding, search.onnx_runtime; "
        "print(sorted(m for m in sys.modules if m in ('search.model_build', 'model2vec', 'model2vec.distill')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

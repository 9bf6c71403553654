"""End to end: the real CLI creates keys and a real uvicorn server answers on 127.0.0.1."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import background_texts, make_rows, write_jsonl

CLI = [sys.executable, "-c", "from api.cli import main; main()"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def cli(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(idx: Path, *args: str) -> Iterator[str]:
    """`promptsim serve --index idx ARGS` on a free port, ready; its base URL. Stopped afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--index", str(idx), "--port", str(port), *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_ready(proc: subprocess.Popen, base: str) -> None:
    """Poll /readyz until the server answers (it loads the model first)."""
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    pytest.fail("server did not become ready")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    cli("ingest", str(write_jsonl(tmp / "p.jsonl", make_rows(background_texts(80)))), "--index", str(tmp / "idx"))
    refused = subprocess.run(
        [*CLI, "serve", "--index", str(tmp / "idx"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert refused.returncode == 1 and "no API key configured" in refused.stderr
    created = cli("keys", "create", "--index", str(tmp / "idx"), "--name", "reader", "--scopes", "read")
    key = created.stdout.strip().splitlines()[-1]
    assert created.stdout.strip() == key and key.startswith("ps_")  # the key, alone on the last line
    with serving(tmp / "idx", "--workers", "2") as base:
        yield base, key, tmp / "idx"


def test_real_server_smoke(server):
    base, key, idx = server
    headers = {"Authorization": f"Bearer {key}"}
    text = background_texts(80)[5]
    hit = httpx.post(f"{base}/v1/search", json={"text": text, "k": 3}, headers=headers, timeout=60).json()
    assert hit["results"][0]["text"] == text[:200] and hit["results"][0]["score"] == 1.0
    assert httpx.post(f"{base}/v1/search", json={"text": text}, timeout=30).status_code == 401
    assert httpx.post(f"{base}/v1/prompts", json={"prompts": []}, headers=headers, timeout=30).status_code == 403
    assert httpx.get(f"{base}/openapi.json", timeout=30).json()["info"]["title"] == "promptsim"
    stats = httpx.get(f"{base}/v1/stats", headers=headers, timeout=30).json()
    assert stats["prompts"] == stats["vectors"] == stats["signatures"] == 80
    cli("keys", "revoke", "--index", str(idx), "--name", "reader")
    assert httpx.get(f"{base}/v1/stats", headers=headers, timeout=30).status_code == 401
    listed = cli("keys", "list", "--index", str(idx), "--json").stdout
    assert '"revoked": true' in listed and key not in listed


def test_a_static_index_is_served_without_torch(tmp_path):
    """`promptsim serve` on a static-model index, searched and written to, never imports torch & co.

    They cost 6.7-12 s of every restart on 2 shared cores (the kill loop's restart -> /readyz);
    the static model needs none of them (search/static_embedding.py).
    """
    rows = make_rows(background_texts(40))
    cli(
        "ingest",
        str(write_jsonl(tmp_path / "p.jsonl", rows)),
        "--index",
        str(tmp_path / "idx"),
        "--model",
        "static-minilm",
    )
    key = cli("keys", "create", "--index", str(tmp_path / "idx"), "--name", "rw", "--scopes", "read,write")
    headers = {"Authorization": f"Bearer {key.stdout.strip().splitlines()[-1]}"}
    port = free_port()
    with open(tmp_path / "imports.txt", "wb") as imports:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-X",
                "importtime",
                *CLI[1:],
                "serve",
                "--index",
                str(tmp_path / "idx"),
                "--port",
                str(port),
            ],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=imports,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(proc, base)
            hit = httpx.post(f"{base}/v1/search", json={"text": rows[3]["text"], "k": 2}, headers=headers, timeout=60)
            assert hit.status_code == 200 and hit.json()["results"][0]["id"] == rows[3]["id"]
            new = {"id": "new-1", "text": "a prompt embedded by the server", "account_id": "a", "timestamp": 1.8e9}
            added = httpx.post(f"{base}/v1/prompts", json={"prompts": [new]}, headers=headers, timeout=60)
            assert added.status_code == 200, added.text
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    lines = (tmp_path / "imports.txt").read_text().splitlines()
    imported = {line.split("|")[-1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    assert "search" in imported and "tokenizers" in imported  # the log is the server's imports
    heavy = {"torch", "transformers", "sentence_transformers", "model2vec", "onnxruntime", "sklearn", "pandas"}
    assert not imported & heavy, sorted(imported & heavy)

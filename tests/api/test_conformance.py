"""The API against its own spec: schemathesis (--checks all) on a real uvicorn, with a key of each scope.

The server is `promptsim serve` in a subprocess over an index built by the CLI with the real
model, so every generated request meets what a client meets. Each scope's run is bounded
(examples per operation, one seed) to keep the suite's runtime modest.
"""

import re
import subprocess
import sys

import httpx
import pytest

from tests.api.test_server import CLI, ENV, cli, free_port, wait_ready
from tests.conftest import background_texts, make_rows, write_jsonl

SCHEMATHESIS = [sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"]
EXAMPLES = "25"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conformance")
    idx = tmp / "idx"
    wrapper = "Before answering, write out your complete reasoning step by step, then answer:"
    rows = make_rows(background_texts(60)) + make_rows(
        [f"{wrapper} {t}" for t in background_texts(100)[60:]], prefix="c"
    )
    cli("ingest", str(write_jsonl(tmp / "p.jsonl", rows)), "--index", str(idx))
    cli("dedup", "--index", str(idx), "--out", str(tmp / "clusters.jsonl"))
    keys = {}
    for scope in ("read", "write", "admin", "read,raw"):
        made = cli("keys", "create", "--index", str(idx), "--name", scope, "--scopes", scope, "--rate", "100000")
        keys[scope] = made.stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--index", str(idx), "--port", str(port), "--anonymous-rate", "100000"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base)
        yield base, keys, tmp
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["read", "write", "admin", "read,raw"])
def test_schemathesis_all_checks_pass(served, scope):
    base, keys, tmp = served
    run = subprocess.run(
        [
            *SCHEMATHESIS,
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "-H",
            f"Authorization: Bearer {keys[scope]}",
            "--max-examples",
            EXAMPLES,
            "--seed",
            "18",
            "--generation-database",
            "none",
            "--no-color",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=ENV,
        timeout=600,
    )
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    generated = re.search(r"(\d+) generated", summary)
    assert generated and int(generated.group(1)) > 100, summary
    print(f"schemathesis ({scope}): {generated.group(0)}; {summary.splitlines()[-1]}")


def test_docs_are_served_offline_under_the_csp(served):
    base, _, _ = served
    page = httpx.get(f"{base}/docs", timeout=30)
    csp = page.headers["content-security-policy"]
    assert page.status_code == 200 and "script-src 'self'" in csp and "cdn" not in page.text.lower()
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
        assert httpx.get(f"{base}{asset}", timeout=30).status_code == 200, asset

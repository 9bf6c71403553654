"""The API against its own spec: schemathesis (--checks all) on a real uvicorn, with a key of each scope.

The server is `promptsim serve` in a subprocess over an index built by the CLI with the real
model, so every generated request meets what a client meets; stored ids, cluster ids and a
snapshot name are offered to the generator half the time, so requests reach stored data (and
masked text) as well as 404s. Each scope's run is bounded (25 examples per operation, one
seed): about a minute a scope.
"""

import json
import re
import subprocess
import sys

import httpx
import pytest

from tests.api.test_server import ENV, cli, serving
from tests.conftest import background_texts, make_rows, write_jsonl

SCHEMATHESIS = [sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"]
EXAMPLES = "25"
BULK = ["POST /v1/prompts", "POST /v1/search/batch"]
BULK_SECONDS = 120.0


# Prompts whose text and metadata hold what masking must catch, so masked responses are checked too.
SECRETS = [
    {
        "id": f"pii{i}",
        "text": f"Mail alice{i}@example.com from 10.0.0.{i}, key sk-{'a1B2' * 8}, then summarise my notes",
        "account_id": f"acct-pii-{i % 3}",
        "timestamp": 1_763_100_000 + i,
        "device": {"ip": f"192.168.1.{i}", "owner": {"email": f"bob{i}@example.org"}},
    }
    for i in range(6)
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conformance")
    idx = tmp / "idx"
    wrapper = "Before answering, write out your complete reasoning step by step, then answer:"
    rows = make_rows(background_texts(60)) + make_rows(
        [f"{wrapper} {t}" for t in background_texts(100)[60:]], prefix="c"
    )
    cli("ingest", str(write_jsonl(tmp / "p.jsonl", rows + SECRETS)), "--index", str(idx))
    cli("dedup", "--index", str(idx), "--out", str(tmp / "clusters.jsonl"))
    (idx / "snapshots").mkdir(mode=0o700)
    cli("snapshot", "create", "--index", str(idx), "--out", str(idx / "snapshots" / "base.snapshot"))
    lines = [json.loads(line) for line in (tmp / "clusters.jsonl").read_text().splitlines()]
    clusters = [line["cluster_id"] for line in lines]
    confirmed = cli("verdict", "--index", str(idx), "--cluster", clusters[0], "--confirm", "--note", "seed", "--json")
    known = {
        "prompt_ids": [r["id"] for r in rows[::7] + SECRETS],
        "cluster_ids": clusters,
        "names": ["base.snapshot"],
        "watch_ids": [json.loads(confirmed.stdout)["family_id"]],
    }
    (tmp / "schemathesis.toml").write_text(config(known))
    keys = {}
    for scope in ("read", "write", "admin", "read,raw", "read,triage"):
        made = cli("keys", "create", "--index", str(idx), "--name", scope, "--scopes", scope, "--rate", "100000")
        keys[scope] = made.stdout.strip().splitlines()[-1]
    with serving(idx, "--anonymous-rate", "100000") as base:
        yield base, keys, tmp


def config(known: dict[str, list[str]]) -> str:
    """schemathesis.toml: ids that exist, drawn half the time, so generated requests reach stored data too."""
    lines = []
    for name, values in known.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for parameter, name in [
        ("path.prompt_id", "prompt_ids"),
        ("body.prompt_id", "prompt_ids"),
        ("path.cluster_id", "cluster_ids"),
        ("path.name", "names"),
        ("path.watch_id", "watch_ids"),
    ]:
        lines.append(f'"{parameter}" = {{ dictionary = "{name}", probability = 0.5 }}')
    # --checks all includes max_response_time (10 s). The bulk operations embed up to 1,000
    # prompts or 256 queries in one request, which takes longer than that on a loaded 2-core
    # machine by design; they get a limit of their own, every other operation keeps 10 s.
    lines += ["", "[[operations]]", f"include-name = {json.dumps(BULK)}", f"checks.max_response_time = {BULK_SECONDS}"]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["read", "write", "admin", "read,raw", "read,triage"])
def test_schemathesis_all_checks_pass(served, scope):
    base, keys, tmp = served
    run = subprocess.run(
        [
            *SCHEMATHESIS,
            "--config-file",
            str(tmp / "schemathesis.toml"),
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
            # Not a timing check: the largest valid bodies (1,000 prompts to embed, 256 searches) take
            # seconds on a loaded 2-core machine, and schemathesis' default 10 s would call that an error.
            "--request-timeout",
            "300",
        ],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=ENV,
        timeout=600,
    )
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    cases = re.search(r"(\d+) generated, (\d+) passed(?:, (\d+) skipped)?$", summary, re.MULTILINE)
    assert cases, summary  # a line with "failed" or "errored" in it does not match
    generated, passed = int(cases.group(1)), int(cases.group(2))
    assert generated == passed and generated > 1000, summary  # every case: no failure, no server error
    print(f"schemathesis --checks all ({scope}): {cases.group(0)}")


def test_docs_are_served_offline_under_the_csp(served):
    base, _, _ = served
    page = httpx.get(f"{base}/docs", timeout=30)
    csp = page.headers["content-security-policy"]
    assert page.status_code == 200 and "script-src 'self'" in csp and "cdn" not in page.text.lower()
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
        assert httpx.get(f"{base}{asset}", timeout=30).status_code == 200, asset

"""One contract: the same request gets the same answer, or the same error, from HTTP, the CLI and the library.

HTTP is a real `promptsim serve` (uvicorn, the real model) over an index the CLI built; the
CLI runs in-process (CliRunner); the library is `import promptsim`. Before issue 19 the batch
file's `id` was accepted by the CLI and refused by HTTP, an extra field in a posted prompt was
a 422 while the same column in a file became metadata, and a blank query was answered with
20 arbitrary hits on every path.
"""

import json
import shutil
from dataclasses import asdict

import httpx
import pytest
from click.testing import CliRunner

import promptsim
from api.cli import main
from tests.api.test_server import cli, serving
from tests.conftest import write_jsonl

T = 1_795_168_800  # 2026-11-20T10:00:00Z


@pytest.fixture(scope="module")
def served(built, tmp_path_factory):
    """A copy of the shared index behind a real server, and a key that may read, write and see raw text."""
    tmp, rows = built
    idx = tmp_path_factory.mktemp("contract") / "idx"
    shutil.copytree(tmp / "idx", idx)
    made = cli("keys", "create", "--index", str(idx), "--name", "all", "--scopes", "read,write,raw", "--rate", "1000")
    headers = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
    with serving(idx) as base:
        yield base, headers, idx, rows


def queries(rows):
    """Requests every edge must treat alike: answered ones and refused ones."""
    return [
        {"text": rows[160]["text"], "k": 3},
        {"text": rows[7]["text"], "k": 2, "min_score": 0.5, "filters": {"exclude_account_ids": ["acct-007"]}},
        {"text": rows[160]["text"], "k": 4, "filters": {"since": T * 1000 - 10**12, "until": "2026-11-20 10:00"}},
        {"prompt_id": rows[3]["id"], "k": 2, "full": True},
        {"text": " \n\t "},  # blank: 422 everywhere
        {"text": "hello", "k": 0},
        {"text": "hello", "limit": 5},  # unknown field
        {"prompt_id": "p0001"},  # unknown prompt: 404 everywhere
    ]


def http_one(base, headers, body):
    """(status, answer or the error's detail with the 'body' prefix dropped) of POST /v1/search."""
    response = httpx.post(f"{base}/v1/search", json=body, headers=headers, timeout=120)
    found = response.json()
    if response.status_code != 200:
        detail = found["error"]["detail"]
        return response.status_code, None if detail is None else [{**d, "loc": d["loc"][1:]} for d in detail]
    return 200, found


def cli_lines(idx, bodies, tmp_path):
    """(status, answer or the error's detail) of each body as a `promptsim search --queries` line."""
    source = write_jsonl(tmp_path / "q.jsonl", bodies)
    result = CliRunner().invoke(main, ["search", "--index", str(idx), "--queries", str(source), "--json"])
    out = []
    for line in map(json.loads, result.stdout.splitlines()):
        line.pop("query_id")
        out.append((line["error"]["status"], line["error"]["detail"]) if "error" in line else (200, line))
    return out


def as_json(item):
    """A library record as the API serialises it (tuples become arrays)."""
    return json.loads(json.dumps(asdict(item)))


def library_items(idx, bodies):
    with promptsim.open_index(idx) as index:
        items = [as_json(i) for i in promptsim.search_batch(index, bodies)]
    out = []
    for item in items:
        item.pop("query_id")
        out.append((item["error"]["status"], item["error"]["detail"]) if "error" in item else (200, item))
    return out


def test_a_search_gets_the_same_answer_or_error_from_http_the_cli_and_the_library(served, tmp_path):
    base, headers, idx, rows = served
    bodies = queries(rows)
    http = [http_one(base, headers, b) for b in bodies]
    assert [s for s, _ in http] == [200, 200, 200, 200, 422, 422, 422, 404]
    assert http[4][1] == [{"loc": ["text"], "msg": "must hold at least one visible character (not only whitespace)"}]
    assert http[6][1] == [{"loc": ["limit"], "msg": "Extra inputs are not permitted"}]
    assert cli_lines(idx, bodies, tmp_path) == http
    assert library_items(idx, bodies) == http


def test_a_batch_names_its_queries_alike_on_every_edge(served, tmp_path):
    """The batch file's `id` is HTTP's too: each answer carries query_id; an unknown prompt fails its entry only."""
    base, headers, idx, rows = served
    bodies = [{"id": "first", "text": rows[160]["text"], "k": 2}, {"prompt_id": "p0001"}, {"prompt_id": rows[3]["id"]}]
    response = httpx.post(f"{base}/v1/search/batch", json={"queries": bodies}, headers=headers, timeout=120)
    assert response.status_code == 200
    http = response.json()["responses"]
    assert [r["query_id"] for r in http] == ["first", "2", "3"] and http[1]["error"]["status"] == 404
    with promptsim.open_index(idx) as index:
        assert [as_json(i) for i in promptsim.search_batch(index, bodies)] == http
    source = write_jsonl(tmp_path / "q.jsonl", bodies)
    result = CliRunner().invoke(main, ["search", "--index", str(idx), "--queries", str(source), "--json"])
    assert [json.loads(line) for line in result.stdout.splitlines()] == http  # lines numbered as positions here


def test_a_record_is_stored_alike_from_a_file_a_post_and_the_library(served, tmp_path):
    """Extra fields join metadata (a POST used to refuse them with 422), integer ids and epoch ms are taken."""
    base, headers, idx, _ = served
    record = {
        "id": 9001,
        "text": "A prompt posted by a detector, with fields of its own",
        "account_id": 42,
        "timestamp": T * 1000,
        "metadata": {"tier": "free"},
        "source": "web",
    }
    posted = httpx.post(f"{base}/v1/prompts", json={"prompts": [record]}, headers=headers, timeout=120)
    assert posted.status_code == 200 and posted.json()["results"][0]["status"] == "stored", posted.text
    via_http = httpx.get(f"{base}/v1/prompts/9001", headers=headers, timeout=30).json()
    ingested = CliRunner().invoke(
        main, ["ingest", str(write_jsonl(tmp_path / "r.jsonl", [record])), "--index", str(tmp_path / "cli")]
    )
    assert ingested.exit_code == 0, ingested.output
    promptsim.add(tmp_path / "lib", [record])
    expected = {
        "id": "9001",
        "text": record["text"],
        "account_id": "42",
        "timestamp": "2026-11-20T10:00:00Z",
        "metadata": {"tier": "free", "source": "web"},
    }
    assert via_http == expected
    for other in (tmp_path / "cli", tmp_path / "lib"):
        with promptsim.open_index(other, with_model=False) as index:
            stored = index.store.fetch([index.store.row_of("9001")]).popitem()[1]
        assert (stored.id, stored.account_id, stored.timestamp, stored.metadata) == (
            "9001",
            "42",
            float(T),
            expected["metadata"],
        )

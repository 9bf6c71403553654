"""The promptsim CLI through click's runner, on a real-model index built once."""

import json

import pytest
from click.testing import CliRunner

from api.cli import main
from tests.conftest import background_texts, make_rows, write_jsonl

WRAPPER = "You are a world-class expert. Think step by step, show every intermediate result, and end with ANSWER:"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    rows = make_rows(background_texts(150))
    rows += make_rows([f"{WRAPPER} {t}" for t in background_texts(190)[150:]], accounts=8, prefix="c")
    for r in rows[150:]:
        r["account_id"] = "bot-" + r["account_id"]
    source = write_jsonl(tmp / "prompts.jsonl", rows)
    result = CliRunner().invoke(main, ["ingest", str(source), "--index", str(tmp / "idx"), "--json"])
    assert result.exit_code == 0, result.output
    return tmp, rows


def invoke(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_every_command_has_help_with_an_example():
    assert "Example" in invoke("--help").output
    for name in main.commands:
        result = invoke(name, "--help")
        assert result.exit_code == 0 and "Example" in result.output, name


def test_search_json_contract(built):
    tmp, rows = built
    result = invoke("search", "--index", str(tmp / "idx"), "-k", "5", "--json", rows[160]["text"])
    body = json.loads(result.stdout)
    assert set(body) == {"results", "summary", "clusters", "verdict", "family", "watch"}  # the API's answer, same code
    assert body["results"][0]["id"] == rows[160]["id"]
    for hit in body["results"]:
        assert {"id", "account_id", "timestamp", "score", "cosine", "jaccard", "template", "text"} <= set(hit)
        assert 0 <= hit["score"] <= 1
    assert body["summary"]["siblings"] == 40 and body["summary"]["accounts"] == 8
    assert {"threshold", "first_seen", "last_seen", "top_accounts"} <= set(body["summary"])


def test_search_reads_stdin_and_prints_a_table(built):
    tmp, rows = built
    result = invoke("search", "--index", str(tmp / "idx"), "-k", "3", "-", input=rows[3]["text"])
    assert result.exit_code == 0
    assert "siblings" in result.output and rows[3]["id"] in result.output and "score" in result.output


def test_batch_queries_one_line_each_in_order(built):
    tmp, rows = built
    queries = tmp / "q.jsonl"
    queries.write_text("".join(json.dumps({"id": f"q{i}", "text": rows[i]["text"]}) + "\n" for i in (0, 170, 7)))
    result = invoke("search", "--index", str(tmp / "idx"), "--queries", str(queries), "-k", "4", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query_id"] for line in lines] == ["q0", "q170", "q7"]
    assert [line["results"][0]["id"] for line in lines] == [rows[0]["id"], rows[170]["id"], rows[7]["id"]]
    assert all(len(line["results"]) == 4 and "summary" in line for line in lines)


def test_stats_contract(built):
    tmp, rows = built
    body = json.loads(invoke("stats", "--index", str(tmp / "idx"), "--json").stdout)
    assert {"prompts", "vectors", "signatures", "accounts", "first_seen", "last_seen", "model", "num_perm"} <= set(body)
    assert body["prompts"] == body["vectors"] == body["signatures"] == len(rows)
    assert body["model"] == "all-MiniLM-L6-v2" and body["num_perm"] == 128 and body["first_seen"].endswith("Z")


def test_delete_by_id_and_account(built, tmp_path):
    import shutil

    tmp, rows = built
    idx = tmp_path / "idx"
    shutil.copytree(tmp / "idx", idx)
    result = invoke("delete", "--index", str(idx), "--id", rows[0]["id"], "--id", rows[1]["id"], "--json")
    assert json.loads(result.stdout)["deleted"] == 2
    result = invoke("delete", "--index", str(idx), "--account", "bot-acct-003", "--json")
    body = json.loads(result.stdout)
    assert body["deleted"] == 5 and body["prompts"] == body["vectors"] == body["signatures"] == len(rows) - 7
    search = json.loads(invoke("search", "--index", str(idx), "--json", "-k", "50", rows[160]["text"]).stdout)
    assert "bot-acct-003" not in {h["account_id"] for h in search["results"]}


def test_mismatched_settings_and_missing_index_fail_clearly(built, tmp_path):
    tmp, _ = built
    source = write_jsonl(tmp_path / "x.jsonl", make_rows(["one more prompt to add here"]))
    result = invoke("ingest", str(source), "--index", str(tmp / "idx"), "--num-perm", "64")
    assert result.exit_code == 1
    assert "num_perm=128" in result.output and "--num-perm 128" in result.output
    result = invoke("stats", "--index", str(tmp_path / "none"))
    assert result.exit_code == 1 and "no promptsim index" in result.output and "promptsim ingest" in result.output
    assert invoke("search", "--index", str(tmp / "idx")).exit_code == 2  # no TEXT: a usage error


def test_dedup_accounts_and_report_commands(built, tmp_path):
    import shutil

    tmp, rows = built
    idx = tmp_path / "idx"
    shutil.copytree(tmp / "idx", idx)
    out = tmp_path / "clusters.jsonl"
    result = invoke("dedup", "--index", str(idx), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert stats["clusters"] == len(lines) and stats["flagged"] == sum(c["flagged"] for c in lines)
    contract = {
        "cluster_id",
        "members",
        "size",
        "accounts",
        "template",
        "first_seen",
        "last_seen",
        "campaign_score",
        "flagged",
        "features",
    }
    assert all(contract <= set(c) and c["size"] == len(c["members"]) >= 2 for c in lines)
    campaign = next(c for c in lines if c["flagged"])
    assert set(campaign["members"]) == {r["id"] for r in rows[150:]}
    result = invoke("accounts", "--index", str(idx), "--out", str(tmp_path / "accounts.jsonl"))
    accounts = [json.loads(line) for line in (tmp_path / "accounts.jsonl").read_text().splitlines()]
    assert {a["account_id"] for a in accounts} == {f"bot-acct-{i:03d}" for i in range(8)}
    result = invoke("report", "--index", str(idx), "--out", str(tmp_path / "report"))
    assert result.exit_code == 0 and campaign["cluster_id"] in (tmp_path / "report" / "index.html").read_text()

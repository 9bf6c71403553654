"""The promptsim CLI through click's runner, on a real-model index built once."""

import json

import pytest
from click.testing import CliRunner

from api.cli import main
from tests.conftest import make_rows, write_jsonl

WRAPPER = "You are a world-class expert. Think step by step, show every intermediate result, and end with ANSWER:"


def invoke(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def _commands(group, path=()):
    """Every command under group, at any depth, as (path of names, command)."""
    import click

    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_command_at_every_depth_has_help_with_an_example():
    """Every command and every subcommand (keys create, snapshot restore, ...), walked recursively."""
    assert "Example" in invoke("--help").output
    walked = list(_commands(main))
    assert {("keys", "create"), ("snapshot", "restore"), ("models", "build"), ("rebuild",)} <= {p for p, _ in walked}
    for path, _ in walked:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, path
        example = result.output.split("Example", 1)[-1] if "Example" in result.output else ""
        assert "promptsim " + " ".join(path) in example, f"{' '.join(path)}: no example of itself"


def test_command_modules_share_helpers_through_cli_common_not_each_other():
    import ast
    from pathlib import Path

    api = Path(__file__).resolve().parents[2] / "api"
    for name in ("cli_admin.py", "cli_search.py", "cli_triage.py", "cli_common.py"):
        tree = ast.parse((api / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
        assert "cli" not in imported, f"api/{name} imports api/cli.py"


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


def test_dedup_of_a_window_with_history_draws_in_the_campaigns_earlier_prompts(built, tmp_path):
    import shutil

    tmp, rows = built
    idx = tmp_path / "idx"
    shutil.copytree(tmp / "idx", idx)
    campaign = rows[150:]
    since, until = str(campaign[30]["timestamp"]), str(campaign[39]["timestamp"] + 1)  # its last ten prompts
    window = {r["id"] for r in campaign[30:]}
    runs = {}
    for name, extra in (("alone", []), ("history", ["--history"])):
        out = tmp_path / f"{name}.jsonl"
        result = invoke(
            "dedup", "--index", str(idx), "--out", str(out), "--since", since, "--until", until, "--json", *extra
        )
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        runs[name] = (json.loads(result.stdout), [set(c["members"]) for c in lines if set(c["members"]) & window])
    assert runs["alone"][1] == [window] and "history_siblings" not in runs["alone"][0]
    (members,) = runs["history"][1]
    assert (
        window < members <= {r["id"] for r in campaign} and runs["history"][0]["history_siblings"] >= len(members) - 10
    )
    for refused in (["--incremental"], ["--engine", "ray"]):
        result = invoke("dedup", "--index", str(idx), "--out", str(tmp_path / "x.jsonl"), "--history", *refused)
        assert result.exit_code == 2 and "--history" in result.output


# -- no silent failure (issue 19) --------------------------------------------------------------


def test_an_ingest_that_stores_nothing_exits_1_with_the_fix_and_leaves_no_index(tmp_path):
    """Wrong column names used to skip every row, exit 0 and leave an empty index with the model fixed."""
    source = tmp_path / "export.csv"
    source.write_text("request_id,user_id,created_at,prompt\nr1,u1,2026-11-20T10:00:00Z,hello there\n")
    result = invoke("ingest", str(source), "--index", str(tmp_path / "idx"))
    assert result.exit_code == 1
    assert (
        "export.csv: its one record was not stored: no 'id', 'text', 'account_id', 'timestamp' field" in result.output
    )
    assert "--id-field request_id --text-field prompt --account-field user_id --time-field created_at" in result.output
    assert not (tmp_path / "idx").exists()


def test_a_bom_csv_with_epoch_milliseconds_is_ingested_as_exported(tmp_path):
    """Excel's CSV (a byte-order mark) and epoch-ms times used to skip 100% of rows, exit 0."""
    source = tmp_path / "excel.csv"
    source.write_bytes(
        "\ufeffid,text,account_id,timestamp\n"
        "1,a first prompt from the export,u1,1795168800000\n"
        "2,a second prompt from the export,u2,2026-11-20 10:01:00\n".encode()
    )
    result = invoke("ingest", str(source), "--index", str(tmp_path / "idx"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 2
    stats = json.loads(invoke("stats", "--index", str(tmp_path / "idx"), "--json").stdout)
    assert (stats["first_seen"], stats["last_seen"]) == ("2026-11-20T10:00:00Z", "2026-11-20T10:01:00Z")


def test_a_unit_mix_up_exits_1_naming_the_option(tmp_path):
    source = write_jsonl(tmp_path / "ms.jsonl", make_rows(["one prompt in milliseconds"], start=1795168800000.0))
    result = invoke("ingest", str(source), "--index", str(tmp_path / "idx"), "--time-unit", "s")
    assert result.exit_code == 1 and "read as seconds is out of range" in result.output
    assert "--time-unit" in result.output and not (tmp_path / "idx").exists()


def test_repeated_ids_are_counted_and_max_skipped_fails_a_mostly_bad_input(tmp_path):
    """`read 3: 1 added, 0 unchanged, 1 skipped` lost a record; now every record is counted once."""
    rows = make_rows(["first prompt text here", "second prompt text here"])
    rows.append({**rows[0], "text": "first prompt, sent again with new text"})  # the same id later in the run
    rows.append({"id": "bad", "text": "no account or time"})
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    result = invoke("ingest", str(source), "--index", str(tmp_path / "idx"), "--json")
    body = json.loads(result.stdout)
    assert result.exit_code == 0 and (body["records"], body["added"], body["repeated"], body["skipped"]) == (4, 2, 1, 1)
    again = invoke("ingest", str(source), "--index", str(tmp_path / "idx"), "--max-skipped", "0.2")
    assert again.exit_code == 1
    assert "1 of 4 records skipped (25%: 1 missing account_id), more than --max-skipped 0.2" in again.output


def test_a_delete_that_deletes_nothing_exits_1(built, tmp_path):
    import shutil

    tmp, rows = built
    idx = tmp_path / "idx"
    shutil.copytree(tmp / "idx", idx)
    result = invoke("delete", "--index", str(idx), "--id", "p0001")  # mistyped: p00001
    assert result.exit_code == 1 and "none of the ids given is stored: 'p0001'" in result.output
    result = invoke("delete", "--index", str(idx), "--account", "acct-999")
    assert result.exit_code == 1 and "no stored prompts of account 'acct-999'" in result.output
    result = invoke("delete", "--index", str(idx), "--id", rows[0]["id"], "--id", "p0001", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout.split("\nError")[0])["deleted"] == 1
    assert "not stored, so not deleted: 'p0001' (1 of the 2 ids given)" in result.output


@pytest.mark.parametrize(
    "damage", ["vectors.faiss garbage", "lsh.npz garbage", "windows.npz cut", "vectors.faiss gone", "all gone"]
)
def test_rebuild_repairs_damaged_or_missing_faiss_and_lsh_files(built, tmp_path, damage):
    """rebuild used to fail with the very checksum error that prescribes it."""
    import shutil

    tmp, rows = built
    idx = tmp_path / "idx"
    shutil.copytree(tmp / "idx", idx)
    name, how = damage.split()
    for target in ["vectors.faiss", "lsh.npz", "windows.npz"] if name == "all" else [name]:
        path = idx / target
        if how == "garbage":
            path.write_bytes(b"\x00garbage" * 64)
        elif how == "cut":
            path.write_bytes(path.read_bytes()[:100])
        else:
            path.unlink()
    if how != "gone":
        broken = invoke("stats", "--index", str(idx))
        assert broken.exit_code == 1 and "promptsim rebuild --index" in broken.output
    result = invoke("rebuild", "--index", str(idx))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"rebuilt FAISS and the LSHs of {idx} from the store: 190 prompts, 190 vectors, 190 signatures, 28 accounts\n"
    )
    stats = json.loads(invoke("stats", "--index", str(idx), "--json").stdout)
    assert stats["prompts"] == stats["vectors"] == stats["signatures"] == 190
    found = json.loads(invoke("search", "--index", str(idx), "-k", "1", "--json", rows[160]["text"]).stdout)
    assert found["results"][0]["id"] == rows[160]["id"]


def test_purge_takes_weeks_and_says_its_cutoff(tmp_path):
    import time

    now = time.time()
    rows = make_rows(["an old prompt from last month", "a fresh prompt from today"], start=now - 30 * 86_400)
    rows[1]["timestamp"] = now
    invoke("ingest", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--index", str(tmp_path / "idx"))
    result = invoke("purge", "--index", str(tmp_path / "idx"), "--older-than", "2w")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged 1 prompts older than 14 days (timestamp before 20")
    assert result.output.endswith("Z); 1 remain\n")


def test_a_refused_restore_leaves_no_directory_behind(built, tmp_path):
    tmp, _ = built
    snapshot = tmp_path / "s.snapshot"
    assert invoke("snapshot", "create", "--index", str(tmp / "idx"), "--out", str(snapshot)).exit_code == 0
    snapshot.write_bytes(snapshot.read_bytes()[:4096])  # truncated in transit
    target = tmp_path / "restored"
    result = invoke(
        "snapshot", "restore", str(snapshot), "--index", str(target), "--key-file", str(tmp / "idx/snapshot.key")
    )
    assert result.exit_code == 1 and "unreadable or truncated" in result.output
    assert not target.exists()  # no directory holding a stray write.lock


def test_insecure_dev_beside_live_keys_is_refused_not_ignored(built, tmp_path):
    import shutil

    tmp, _ = built
    idx = tmp_path / "idx"
    shutil.copytree(tmp / "idx", idx)
    assert invoke("keys", "create", "--index", str(idx), "--name", "a", "--scopes", "read").exit_code == 0
    result = invoke("serve", "--index", str(idx), "--insecure-dev")
    assert result.exit_code == 1 and "has 1 live keys; drop --insecure-dev, or revoke them" in result.output

"""Fixtures shared by the CLI tests: one real-model index built by `promptsim ingest`, once per session."""

import pytest
from click.testing import CliRunner

from api.cli import main
from tests.conftest import background_texts, make_rows, write_jsonl

WRAPPER = "You are a world-class expert. Think step by step, show every intermediate result, and end with ANSWER:"


def campaign_rows() -> list[dict]:
    """150 background prompts, then a 40-prompt campaign (one wrapper) from 8 bot accounts of its own."""
    rows = make_rows(background_texts(150))
    rows += make_rows([f"{WRAPPER} {t}" for t in background_texts(190)[150:]], accounts=8, prefix="c")
    for r in rows[150:]:
        r["account_id"] = "bot-" + r["account_id"]
    return rows


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """campaign_rows() ingested by the CLI (tests that change the index copy it)."""
    tmp = tmp_path_factory.mktemp("cli")
    rows = campaign_rows()
    source = write_jsonl(tmp / "prompts.jsonl", rows)
    result = CliRunner().invoke(main, ["ingest", str(source), "--index", str(tmp / "idx"), "--json"])
    assert result.exit_code == 0, result.output
    return tmp, rows

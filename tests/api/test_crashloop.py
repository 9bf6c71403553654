"""A short crash loop (bench/crashloop.py has the long one): SIGKILLs during API ingest lose nothing."""

import pytest

from bench.crashloop import crash_loop
from tests.conftest import make_rows, write_jsonl


@pytest.mark.slow
def test_server_killed_mid_ingest_loses_and_invents_nothing(tmp_path):
    from click.testing import CliRunner

    from api.cli import main

    source = write_jsonl(tmp_path / "seed.jsonl", make_rows(["a first prompt to create the index"]))
    assert CliRunner().invoke(main, ["ingest", str(source), "--index", str(tmp_path / "idx")]).exit_code == 0
    report = crash_loop(tmp_path / "idx", 50, kill_after=(1.0, 3.0))
    assert report["kills"] >= 3, report
    assert report["prompts_acknowledged"] > 0
    assert report["acknowledged_missing"] == 0 and report["never_sent_present"] == 0, report
    assert report["duplicate_ids"] == 0 and report["structures_agree"], report

"""A short kill loop (bench/crashloop.py runs the long one, every path): SIGKILLs mid-write lose nothing.

Both drive promptsim/killloop.py, the harness tests and benchmarks share.
"""

import pytest

from promptsim.killloop import KillLoop, table


@pytest.mark.slow
def test_kills_on_every_write_path_lose_and_invent_nothing(tmp_path):
    # Few paths (a path's first run is never killed: it times the path), CLI ones mostly: a killed
    # CLI run costs no server restart, so a short run still kills often. bench/crashloop.py mixes all.
    mix = {"api_ingest": 2, "cli_delete": 2, "purge": 1, "snapshot": 1, "restore": 2}
    loop = KillLoop(tmp_path / "work", seed=1, mix=mix, kill_rate=0.9, check_every=3, model="static-minilm")
    report = loop.run(22)
    assert report["kills"] >= 3, table(report)
    assert report["paths"]["api_ingest"]["acknowledged"] > 0, table(report)
    assert report["passed"], table(report)
    assert report["prompts"]["acknowledged_missing"] == 0 and report["prompts"]["never_sent_present"] == 0
    assert report["prompts"]["duplicate_ids"] == 0 and report["structures_agree"]


@pytest.mark.slow
def test_verdicts_are_drawn_on_the_clusters_the_loops_own_traffic_leaves_and_survive_kills(tmp_path):
    # the loop's traffic must cluster: with random words alone no dedup run left a cluster, and the
    # verdict path was never drawn in any long run
    loop = KillLoop(
        tmp_path / "work", seed=2, mix={"dedup": 1, "verdict": 3}, kill_rate=0.3, check_every=3, model="static-minilm"
    )
    report = loop.run(25)
    assert report["paths"]["verdict"]["acknowledged"] > 0, table(report)
    assert report["verdicts"]["acknowledged"] > 0 and report["verdicts"]["missing"] == 0, table(report)
    assert report["passed"], table(report)

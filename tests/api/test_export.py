"""`promptsim export`: OCSF Detection Findings (and plain JSON lines) of flagged campaigns and their accounts.

A campaign's wrapper carries an email address, so the template shows whether the export went
through the disclosure function (masked unless --raw, audit-logged either way).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from api.cli import main
from indexer.campaigns import nightly
from search.family_encoder import load_family_encoder
from search.index import PromptIndex
from search.records import Prompt
from tests.conftest import FakeEncoder, background_texts

DAY = 86_400.0
T0 = 1_795_000_000.0
WRAPPER = "Think carefully and lay out each step of your reasoning, then mail the trace to ops@example.com:"


@pytest.fixture(scope="module")
def idx(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "idx"
    texts = background_texts(500)
    prompts = [Prompt(f"bg{i}", t, f"user{i % 90}", T0 + DAY * 14 * i / 400) for i, t in enumerate(texts[:400])]
    prompts += [
        Prompt(f"c{i}", f"{WRAPPER}\n\n{t}", f"bot{i % 20}", T0 + DAY * (3 + i / 40))
        for i, t in enumerate(texts[400:460])
    ]
    with PromptIndex.open(path, FakeEncoder(512), writable=True, create=True) as index:
        index.upsert(prompts, index.signals([p.text for p in prompts]))
        index.checkpoint()
        clusters, _ = nightly(index, family_encoder=load_family_encoder())
    assert any(c["flagged"] for c in clusters)
    return path


def export(*args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["export", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_ocsf_detection_findings_for_campaigns_and_accounts(idx):
    lines = export("--index", str(idx), "--format", "ocsf")
    campaigns = [f for f in lines if f["finding_info"]["types"] == ["LLM distillation campaign"]]
    accounts = [f for f in lines if f["finding_info"]["types"] == ["LLM distillation account"]]
    assert campaigns and len(accounts) == 20 and len(lines) == len(campaigns) + len(accounts)
    for finding in lines:
        assert finding["class_uid"] == 2004 and finding["category_uid"] == 2 and finding["type_uid"] == 200401
        assert finding["activity_id"] == 1 and finding["severity_id"] in (3, 4) and isinstance(finding["time"], int)
        assert finding["metadata"]["version"] == "1.1.0" and finding["metadata"]["product"]["name"] == "promptsim"
        assert finding["finding_info"]["uid"] and 0 <= finding["confidence_score"] <= 100
    (campaign,) = [c for c in campaigns if "mail the trace" in (c["unmapped"]["template"] or "")]
    assert campaign["unmapped"]["size"] == 60 and campaign["severity_id"] == 4  # score >= 0.8
    assert campaign["start_time"] <= campaign["end_time"] and campaign["finding_info"]["desc"]
    assert "[EMAIL]" in campaign["unmapped"]["template"] and "ops@example.com" not in json.dumps(lines)
    assert {r["uid"] for a in accounts for r in a["resources"]} == {f"bot{i}" for i in range(20)}


def test_raw_exports_keep_the_text_and_both_are_audited(idx, tmp_path):
    out = tmp_path / "findings.jsonl"
    result = CliRunner().invoke(main, ["export", "--index", str(idx), "--format", "jsonl", "--raw", "--out", str(out)])
    assert result.exit_code == 0 and out.stat().st_mode & 0o777 == 0o600
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {line["kind"] for line in lines} == {"campaign", "account"}
    assert any("ops@example.com" in (line.get("template") or "") for line in lines)
    audit = [json.loads(line) for line in (idx / "audit.jsonl").read_text().splitlines()]
    exports = [e for e in audit if e["endpoint"] == "cli export"]
    assert [e["raw"] for e in exports][-2:] == [False, True] and exports[-1]["prompts_returned"] >= 0


def test_since_keeps_only_campaigns_seen_since(idx):
    assert export("--index", str(idx), "--since", "2990-01-01") == []
    refused = CliRunner().invoke(main, ["export", "--index", str(idx), "--since", "yesterday"])
    assert refused.exit_code == 1 and "timestamp" in refused.output

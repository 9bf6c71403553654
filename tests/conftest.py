"""Shared fixtures: the real bundled model (loaded once) and a fake encoder for plumbing tests."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from promptsim.testing import FakeEncoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO / "data" / "corpora"  # the real prompt corpora bundled with the repository


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a `slow` test run first, each file's tests still together and in order.

    `make test` hands whole files to two worker processes in this order; a slow file started
    last would leave one worker running it alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within each file stays


@pytest.fixture(scope="session")
def real_encoder():
    """The bundled all-MiniLM-L6-v2, loaded once per session."""
    from search.embedding import SentenceTransformerEncoder

    return SentenceTransformerEncoder()


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


def background_texts(n: int = 400) -> list[str]:
    """Real, diverse prompts (arena-hard + self-instruct) for realistic fixtures."""
    texts: list[str] = []
    for name in ("arena_hard_questions.jsonl.gz", "self_instruct_instructions.jsonl.gz"):
        with gzip.open(SOURCES / name, "rt", encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle]
    seen, unique = set(), []
    for t in texts:
        if t not in seen and len(t.split()) >= 4:
            seen.add(t)
            unique.append(t)
    return unique[:n]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_rows(texts: list[str], *, accounts: int = 20, start: float = 1_763_000_000.0, prefix: str = "p") -> list[dict]:
    return [
        {"id": f"{prefix}{i:05d}", "text": t, "account_id": f"acct-{i % accounts:03d}", "timestamp": start + 60 * i}
        for i, t in enumerate(texts)
    ]

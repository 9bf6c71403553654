"""A clone is all a user has: no tracked code may name a path outside the repository.

CI also proves it by running the tests in a fresh clone with nothing beside it (`.ci/run`); this
test names the offending line at once, and catches references CI would only hit on some path.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECKED = ("tests", "search", "indexer", "api", "bench", ".ci", "Makefile", "pyproject.toml")

# Lines a user's clone could not satisfy: our machines' own folders and the data folder that sits
# beside our checkout, relative climbs out of the tree, and the repository root's parent.
OUTSIDE = [
    (re.compile(r"shared/(data|docs|hooks)|[\"']shared[\"']"), "the shared folder beside our checkout"),
    (re.compile(r"(?<![\w.])/(work|root|home)/"), "an absolute path on one machine"),
    (re.compile(r"(^|[\s\"'=(:])\.\./"), "a relative path that climbs out of the tree"),
    (re.compile(r"\b(REPO|ROOT|REPO_ROOT|repo|root)\.parent\b"), "the repository root's parent"),
]
ALLOWED = "# outside-ok:"  # an explicit, reviewed exception (e.g. a path-traversal attack under test)
_PARENTS_INDEX = re.compile(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")
_PARENT_CHAIN = re.compile(r"__file__\)(?:\.resolve\(\))?((?:\.parent)+)")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *CHECKED], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    keep = (".py", ".sh", ".toml", ".cfg", ".ini", ".txt", ".yml", ".yaml", ".json", ".html")
    return [
        REPO / name
        for name in listed.split("\0")
        if name and (name.endswith(keep) or "/" not in name or name.startswith(".ci/"))
    ]


def outside_references(path: Path, text: str) -> list[str]:
    """Each line of `text` (the file at `path`) that names a place outside the repository."""
    depth = len(path.relative_to(REPO).parts) - 1  # folders between the repository root and the file
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if ALLOWED in line:
            continue
        reasons = [why for pattern, why in OUTSIDE if pattern.search(line)]
        reasons += [
            "a parents[] index above the repository root"
            for m in _PARENTS_INDEX.finditer(line)
            if int(m.group(1)) > depth
        ]
        reasons += [
            "a .parent chain above the repository root"
            for m in _PARENT_CHAIN.finditer(line)
            if m.group(1).count(".parent") > depth + 1
        ]
        if reasons:
            found.append(f"{path.relative_to(REPO)}:{number}: {reasons[0]}: {line.strip()[:120]}")
    return found


def test_no_tracked_file_names_a_path_outside_the_repository():
    files = tracked_files()
    assert len(files) > 50, "git ls-files found too few files: is this a git checkout?"
    problems = [p for f in files if f.is_file() for p in outside_references(f, f.read_text("utf-8", "replace"))]
    assert not problems, "paths outside the repository:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("relative", "line"),
    [
        ("tests/conftest.py", 'SHARED_DATA = REPO.parent / "shared" / "data"'),  # outside-ok: must be caught
        ("tests/conftest.py", 'open("../shared/data/arena_hard_questions.jsonl")'),  # outside-ok: must be caught
        ("bench/corpus.py", "repo = Path(__file__).resolve().parents[2]"),  # outside-ok: must be caught
        ("tests/search/test_x.py", "Path(__file__).parent.parent.parent.parent / 'x'"),  # outside-ok: must be caught
        ("Makefile", "DATA := /work/shared/data"),  # outside-ok: must be caught
    ],
)
def test_the_check_catches_each_way_out(relative, line):
    assert outside_references(REPO / relative, line), line


@pytest.mark.parametrize(
    ("relative", "line"),
    [
        ("bench/corpus.py", 'return Path(__file__).resolve().parents[1] / "data" / "corpora"'),
        ("tests/conftest.py", "REPO = Path(__file__).resolve().parent.parent"),
        ("tests/conftest.py", 'SOURCES = REPO / "data" / "corpora"'),
        ("tests/x.py", 'member = "../evil"  # outside-ok: an attack under test'),  # outside-ok: example
    ],
)
def test_the_check_lets_paths_inside_the_repository_pass(relative, line):
    assert not outside_references(REPO / relative, line), line

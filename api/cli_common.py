"""What every promptsim command module shares: the --index option, opening the index, time options.

api/cli.py (the main group) and the modules that register commands on it (cli_search,
cli_admin, cli_triage) import these from here, so none of them imports another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import promptsim
from search.index import PromptIndex
from search.records import parse_timestamp


def index_option(func: Any) -> Any:
    """The required --index DIR option, passed as index_dir."""
    return click.option(
        "--index", "index_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Index directory."
    )(func)


def open_index(
    index_dir: Path, *, with_encoder: bool = True, writable: bool = False, structures: bool = True
) -> PromptIndex:
    """Open an existing index with the model recorded in its manifest (the library's open_index)."""
    return promptsim.open_index(index_dir, writable=writable, with_model=with_encoder, structures=structures)


def to_epoch(value: str | None) -> float | None:
    """A --since/--until style option (ISO-8601 or epoch) as epoch seconds; None when not given."""
    return None if value is None else parse_timestamp(value)

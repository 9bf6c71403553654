"""`promptsim search`: one query, a file of queries, or an interactive session that keeps the model loaded.

Every query is validated by the one contract (promptsim/contract.py) and answered by the code
HTTP answers with (promptsim/queries.py), so the CLI's fields, defaults, errors and answers
(hits, summary, clusters, family, verdict) are the API's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import click

from indexer import answers
from indexer.answers import QueryFailed
from indexer.cluster_records import JSONValue
from promptsim.contract import DEFAULT_K, MAX_K, batch_query, search_request
from promptsim.queries import Query, Searcher, answer_queries, labelled
from search.errors import InvalidRequest, PromptNotFound, PromptSimError
from search.index import PromptIndex

from . import output
from .cli_common import index_option, open_index
from .disclosure import describe_text
from .disclosure import reveal_to_operator as reveal

END_OF_PROMPT = "."  # interactive mode: a line holding only this ends a pasted prompt


@click.command()
@index_option
@click.argument("text", required=False)
@click.option("-k", default=DEFAULT_K, show_default=True, help=f"How many hits (1-{MAX_K}).")
@click.option("--id", "prompt_id", help="Search with a stored prompt instead of TEXT (itself excluded).")
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL file of queries as POST /v1/search/batch takes them, one a line: {"id", "text" or '
    '"prompt_id", and optionally "k", "min_score", "filters", "full"}; prints one JSON line per query.',
)
@click.option("--min-score", default=0.0, show_default=True, help="Drop hits scoring below this (0-1).")
@click.option("--account", "accounts", multiple=True, help="Only prompts from this account (repeatable).")
@click.option("--exclude-account", "excluded", multiple=True, help="Never prompts from this account (repeatable).")
@click.option("--since", help="Only prompts at or after this time (ISO-8601 or an epoch number).")
@click.option("--until", help="Only prompts before this time (ISO-8601 or an epoch number).")
@click.option("--full", is_flag=True, help="Whole prompt texts (the table shows the part that differs from the query).")
@click.option(
    "-i",
    "--interactive",
    is_flag=True,
    help=f"Load the model once and search each prompt given on stdin; end each with a line holding only "
    f"'{END_OF_PROMPT}', Ctrl-D quits.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the API's answer) instead of a table.")
def search(
    index_dir: Path,
    text: str | None,
    k: int,
    prompt_id: str | None,
    queries: Path | None,
    min_score: float,
    accounts: tuple[str, ...],
    excluded: tuple[str, ...],
    since: str | None,
    until: str | None,
    full: bool,
    interactive: bool,
    as_json: bool,
) -> None:
    """Find the stored siblings of a prompt: who sent them and when, their clusters, and the verdict.

    TEXT is the prompt; '-' reads it from stdin. The table shows, for each hit, the part that
    differs from the query (the slot a campaign fills) highlighted; --full prints whole texts.
    Exits 1 when the query is invalid (e.g. blank) or names no stored prompt; with --queries,
    a bad line gets an error line and the others are answered, then the exit status is 1.

    \b
    Example:
        promptsim search --index idx "Think step by step and show all reasoning. Q: ..."
        echo "some prompt" | promptsim search --index idx - --json
        promptsim search --index idx --queries suspicious.jsonl -k 50 --json
        promptsim search --index idx -i          # paste prompts one after another
    """
    if sum(x is not None for x in (text, prompt_id, queries)) + interactive != 1:
        raise click.UsageError("give exactly one of TEXT, --id, --queries or --interactive")
    shared: dict[str, Any] = {
        "k": k,
        "min_score": min_score,
        "full": full,
        "filters": {"account_ids": list(accounts), "exclude_account_ids": list(excluded), "since": _time(since)},
    }
    shared["filters"]["until"] = _time(until)
    single = None
    if text is not None or prompt_id is not None:  # checked before the model loads: a bad query fails at once
        single = search_request({**shared, **({"prompt_id": prompt_id} if prompt_id else {"text": _text(text)})})
    with open_index(index_dir) as index:
        searcher = Searcher(index)  # one for the whole command: the model stays loaded
        if queries is not None:
            failed = _batch(searcher, index_dir, queries, shared)
            if failed:
                raise click.ClickException(f"{len(failed)} queries failed ({', '.join(failed[:10])}): see their lines")
        elif interactive:
            _interactive(searcher, index_dir, shared, as_json)
        elif single is not None:
            _one(searcher, index_dir, single, as_json)


def _text(text: str | None) -> str:
    return sys.stdin.read() if text == "-" else str(text)


def _time(value: str | None) -> str | float | None:
    """A time option as the contract takes it: an epoch number as a number, anything else as given."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _one(searcher: Searcher, index_dir: Path, query: Query, as_json: bool, *, indent: int | None = 2) -> None:
    """One query: answered, disclosed (audit-logged) and shown (JSON indented, or one line with indent None)."""
    table = not as_json
    # The table shows the part of each hit that differs from the query: it needs the whole texts.
    (found,) = answer_queries(searcher, [query.model_copy(update={"full": True})] if table else [query])
    if isinstance(found, PromptNotFound):
        raise found
    shown = reveal(index_dir, "cli search", _audited(query), found)
    if as_json:
        output.echo_json(asdict(shown), indent=indent)
    else:
        output.search_answer(shown, _reference(searcher.index, query), full=query.full)


def _audited(query: Query) -> dict[str, JSONValue]:
    """What the audit log keeps of a query: the prompt id, or the text's hash and length."""
    text = getattr(query, "text", None)
    return describe_text(text) if text is not None else {"prompt_id": getattr(query, "prompt_id", None)}


def _reference(index: PromptIndex, query: Query) -> str:
    """The text hits are compared with: the query's, or the stored prompt's (never shown itself)."""
    text = getattr(query, "text", None)
    return text if text is not None else answers.prompt_record(index, str(getattr(query, "prompt_id", ""))).text


def _batch(searcher: Searcher, index_dir: Path, path: Path, shared: dict[str, Any]) -> list[str]:
    """One JSON line per query line, in input order, 64 at a time; returns the ids of the failed ones.

    The command line's -k, --min-score, filters and --full are each line's defaults; a line's own fields win.
    """
    failed: list[str] = []
    pending = _query_lines(path, shared)
    while chunk := list(islice(pending, 64)):
        ids = [query_id for query_id, _ in chunk]
        parsed = [q for _, q in chunk]
        valid = [q for q in parsed if not isinstance(q, InvalidRequest)]
        found = labelled(ids, parsed, answer_queries(searcher, valid))
        shown = reveal(index_dir, "cli search --queries", {"queries": len(chunk)}, found)
        for item in shown:
            output.echo_json(asdict(item), indent=None)
            if isinstance(item, QueryFailed):
                failed.append(item.query_id)
    return failed


def _query_lines(path: Path, shared: dict[str, Any]) -> Iterator[tuple[str, Query | InvalidRequest]]:
    """(query_id, query or what is wrong with it) of each non-blank line; query_id: its id, else the line number."""
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                body = json.loads(line)
            except json.JSONDecodeError as err:
                yield str(line_no), InvalidRequest([([f"line {line_no}"], f"invalid JSON: {err.msg}")])
                continue
            given = body.get("id") if isinstance(body, dict) else None
            query_id = given if isinstance(given, str) and given else str(line_no)
            try:
                yield query_id, batch_query({**shared, **body} if isinstance(body, dict) else body)
            except InvalidRequest as err:
                yield query_id, err


def _interactive(searcher: Searcher, index_dir: Path, shared: dict[str, Any], as_json: bool) -> None:
    """Search each prompt read from stdin with the model kept loaded; a bad one is reported, the session goes on."""
    failures = 0
    for prompt in _prompts(sys.stdin, prompt_user=sys.stdin.isatty()):
        try:
            _one(searcher, index_dir, search_request({**shared, "text": prompt}), as_json, indent=None)
        except (PromptSimError, ValueError) as err:
            failures += 1
            click.echo(f"Error: {err}", err=True)
    if failures:
        raise click.ClickException(f"{failures} of the prompts could not be searched (see above)")


def _prompts(stream: TextIO, *, prompt_user: bool) -> Iterator[str]:
    """Prompts from stream, each ended by a line holding only END_OF_PROMPT (or by the end of input)."""
    lines: list[str] = []
    if prompt_user:
        click.echo(f"paste a prompt, then a line holding only '{END_OF_PROMPT}' (Ctrl-D quits):", err=True)
    while line := stream.readline():
        if line.rstrip("\r\n") == END_OF_PROMPT:
            yield "".join(lines).rstrip("\r\n")
            lines = []
            if prompt_user:
                click.echo(f"\nnext prompt ('{END_OF_PROMPT}' ends it, Ctrl-D quits):", err=True)
        else:
            lines.append(line)
    if "".join(lines).strip():
        yield "".join(lines).rstrip("\r\n")

"""How the CLI shows things: JSON for machines, tables (rich) for people."""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from indexer.answers import SearchAnswer

from .slots import ELLIPSIS, diff_parts, excerpt, runs

# Piped output still gets a wide table (rich would assume 80 columns and wrap every cell).
_console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def echo_json(body: Any, indent: int | None = 2) -> None:
    click.echo(json.dumps(body, indent=indent, ensure_ascii=False))


def key_values(body: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in body.items():
        table.add_row(Text(key, style="bold"), Text(str(value)))
    _console.print(table)


def ingest_report(body: dict[str, Any], *, problems: int = 20, index_line: bool = True) -> None:
    """The counts, the first problems (on stderr), and what the index holds now."""
    repeated = ""
    if body["repeated"]:
        repeated = f", {body['repeated']} repeated (an id already read in this run; the last wins)"
    click.echo(
        f"read {body['records']} records: {body['added']} added, {body['unchanged']} unchanged{repeated}, "
        f"{body['skipped']} skipped"
    )
    for problem in body["problems"][:problems]:
        click.echo(f"  skipped {problem}", err=True)
    if body["skipped"] > min(problems, len(body["problems"])):
        click.echo(f"  ... and {body['skipped'] - min(problems, len(body['problems']))} more", err=True)
    if not index_line:
        return
    secs = body["seconds"]
    click.echo(
        f"index: {body['prompts']} prompts, {body['vectors']} vectors, {body['signatures']} signatures, "
        f"{body['accounts']} accounts (embed {secs['embed']:.1f}s, minhash {secs['minhash']:.1f}s, "
        f"index {secs['index']:.1f}s)"
    )


SLOT_STYLE = "bold reverse"
TEXT_WIDTH = 90  # characters of a hit the table shows, around the part that differs from the query


def search_answer(result: SearchAnswer, reference: str, *, full: bool = False) -> None:
    """Summary, verdict, family and clusters as the API gives them, then the hits.

    Each hit shows the part that differs from the query (reference), highlighted as the UI
    does: a table row holds an excerpt around it, marked with an ellipsis where cut; full
    prints every hit's whole text instead.
    """
    _summary_lines(result)
    if full:
        _full_hits(result, reference)
    else:
        _hit_table(result, reference)


def _line(markup: str) -> None:
    """One line of the answer's header, never wrapped: scripts and tests read them whole."""
    _console.print(markup, soft_wrap=True)


def _summary_lines(result: SearchAnswer) -> None:
    s = result.summary
    if s.siblings:
        # Prompt text and account ids are hostile input: never let rich parse them as markup.
        top = escape(", ".join(f"{a.account_id} ({a.prompts})" for a in s.top_accounts))
        _line(
            f"[bold]{s.siblings} siblings[/bold] (score >= {s.threshold}) from [bold]{s.accounts} "
            f"accounts[/bold], first seen {s.first_seen}, last seen {s.last_seen}; top accounts: {top}"
        )
    else:
        _line(f"no siblings at score >= {s.threshold}")
    flagged = [c.cluster_id for c in result.clusters if c.flagged]
    family = result.family
    if result.verdict == "campaign":
        why = [f"siblings in flagged cluster {', '.join(flagged)}"] if flagged else []
        if family is not None and family.flagged:
            why.append(f"its wrapper matches flagged family {family.cluster_id}")
        if result.watch is not None:
            why.append(f"it matches confirmed family {result.watch.watch_id}")
        _line(f"[bold]verdict: campaign[/bold] ({escape('; '.join(why))})")
    else:
        _line("verdict: none (no sibling in a flagged cluster, no flagged or confirmed family)")
    if family is not None:
        state = "flagged" if family.flagged else "not flagged"
        _line(f"family: {escape(family.cluster_id)} (wrapper similarity {family.similarity:.2f}, {state})")
    if result.watch is not None:
        w = result.watch
        _line(
            f"watch: {escape(w.watch_id)} (similarity {w.similarity:.2f}), confirmed by {escape(w.confirmed_by)} "
            f"at {w.confirmed_at}: {escape(w.note)}"
        )
    if result.clusters:
        listed = ", ".join(
            f"{c.cluster_id}{' flagged' if c.flagged else ''} score {c.campaign_score:.2f} ({c.hits} hits)"
            for c in result.clusters[:5]
        )
        more = f", and {len(result.clusters) - 5} more" if len(result.clusters) > 5 else ""
        _line(f"clusters of the hits: {escape(listed)}{more}")


def _styled(parts: list[tuple[str, bool]]) -> Text:
    """Pieces of a hit, the differing ones highlighted; without colours they are set off with « »."""
    text = Text()
    plain = _console.no_color or _console.color_system is None
    for piece, differs in runs(parts):
        if differs and plain:
            text.append(f"«{piece}»")
        else:
            text.append(piece, style=SLOT_STYLE if differs else "")
    return text


def _hit_table(result: SearchAnswer, reference: str) -> None:
    table = Table(show_lines=False)
    justify: Literal["left", "right"]
    for name, justify in (
        ("#", "right"),
        ("score", "right"),
        ("cosine", "right"),
        ("jaccard", "right"),
        ("template", "right"),
        ("family", "right"),
        ("account", "left"),
        ("time", "left"),
        ("id", "left"),
        ("text (the part that differs from the query highlighted)", "left"),
    ):
        table.add_column(
            name, justify=justify, no_wrap=True, overflow="ellipsis", ratio=1 if name.startswith("text") else None
        )
    for rank, hit in enumerate(result.results, 1):
        parts = excerpt(diff_parts(reference, hit.text), TEXT_WIDTH)
        if hit.truncated and (not parts or parts[-1][0] != ELLIPSIS):
            parts.append((ELLIPSIS, False))
        table.add_row(
            str(rank),
            f"{hit.score:.3f}",
            f"{hit.cosine:.3f}",
            _score(hit.jaccard),
            _score(hit.template),
            _score(hit.family),
            Text(hit.account_id),
            hit.timestamp,
            Text(hit.id),
            _styled(parts),
        )
    _console.print(table)


def _full_hits(result: SearchAnswer, reference: str) -> None:
    for rank, hit in enumerate(result.results, 1):
        head = Text(
            f"#{rank}  score {hit.score:.3f}  cosine {hit.cosine:.3f}  jaccard {_score(hit.jaccard)}  "
            f"template {_score(hit.template)}  family {_score(hit.family)}  {hit.timestamp}  ",
            style="bold",
        )
        head.append(f"{hit.account_id}  {hit.id}", style="bold")
        _console.print(head)
        body = _styled(diff_parts(reference, hit.text))
        if hit.truncated:
            body.append(f"{ELLIPSIS} (cut: the whole text with --full)")
        _console.print(body, soft_wrap=True)
        _console.print()


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def query_failed(query_id: str, message: str) -> None:
    click.echo(f"{query_id}: {message}", err=True)


def dedup_summary(stats: dict[str, Any], clusters: list[dict[str, Any]], out: Any) -> None:
    written = f"; wrote {out}" if out else ""
    click.echo(
        f"{stats['prompts']} prompts -> {stats['clusters']} clusters, {stats['flagged']} flagged "
        f"({stats.get('campaigns_new', 0)} new, {stats.get('campaigns_grown', 0)} grown){written}"
    )
    table = Table()
    for name in ("cluster", "score", "size", "accounts", "per acct", "diversity", "change", "template"):
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=100 if name == "template" else None)
    flagged = sorted((c for c in clusters if c["flagged"]), key=lambda c: (-c["campaign_score"], c["cluster_id"]))
    for c in flagged[:20]:
        f = c["features"]
        table.add_row(
            c["cluster_id"],
            f"{c['campaign_score']:.2f}",
            str(c["size"]),
            str(c["accounts"]),
            f"{f['prompts_per_account']:.1f}",
            f"{f['semantic_diversity']:.2f}",
            c.get("change", ""),
            Text((c.get("template") or "")[:200]),
        )
    _console.print(table)

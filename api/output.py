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

# Piped output still gets a wide table (rich would assume 80 columns and wrap every cell).
_console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def echo_json(body: Any, indent: int | None = 2) -> None:
    click.echo(json.dumps(body, indent=indent, ensure_ascii=False))


def key_values(body: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in body.items():
        table.add_row(Text(key, style="bold"), Text(str(value)))
    _console.print(table)


def ingest_report(body: dict[str, Any]) -> None:
    click.echo(
        f"read {body['records']} records: {body['added']} added, {body['unchanged']} unchanged, "
        f"{body['skipped']} skipped"
    )
    for problem in body["problems"]:
        click.echo(f"  skipped {problem}", err=True)
    if body["skipped"] > len(body["problems"]):
        click.echo(f"  ... and {body['skipped'] - len(body['problems'])} more", err=True)
    secs = body["seconds"]
    click.echo(
        f"index: {body['prompts']} prompts, {body['vectors']} vectors, {body['signatures']} signatures, "
        f"{body['accounts']} accounts (embed {secs['embed']:.1f}s, minhash {secs['minhash']:.1f}s, "
        f"index {secs['index']:.1f}s)"
    )


def search_table(result: SearchAnswer) -> None:
    s = result.summary
    if s.siblings:
        # Prompt text and account ids are hostile input: never let rich parse them as markup.
        top = escape(", ".join(f"{a.account_id} ({a.prompts})" for a in s.top_accounts))
        _console.print(
            f"[bold]{s.siblings} siblings[/bold] (score >= {s.threshold}) from [bold]{s.accounts} "
            f"accounts[/bold], first seen {s.first_seen}, last seen {s.last_seen}; top accounts: {top}"
        )
    else:
        _console.print(f"no siblings at score >= {s.threshold}")
    if result.verdict == "campaign":
        flagged = ", ".join(c.cluster_id for c in result.clusters if c.flagged)
        _console.print(f"[bold]verdict: part of a flagged campaign[/bold] ({escape(flagged)})")
    table = Table(show_lines=False)
    justify: Literal["left", "right"]
    for name, justify in (
        ("#", "right"),
        ("score", "right"),
        ("cosine", "right"),
        ("jaccard", "right"),
        ("template", "right"),
        ("account", "left"),
        ("time", "left"),
        ("id", "left"),
        ("text", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis", ratio=1 if name == "text" else None)
    for rank, hit in enumerate(result.results, 1):
        jac = "-" if hit.jaccard is None else f"{hit.jaccard:.2f}"
        tmpl = "-" if hit.template is None else f"{hit.template:.2f}"
        preview = " ".join(hit.text.split())[:90]
        table.add_row(
            str(rank),
            f"{hit.score:.3f}",
            f"{hit.cosine:.3f}",
            jac,
            tmpl,
            Text(hit.account_id),
            hit.timestamp,
            Text(hit.id),
            Text(preview),
        )
    _console.print(table)


def dedup_summary(stats: dict[str, Any], clusters: list[dict[str, Any]], out: Any) -> None:
    written = f"; wrote {out}" if out else ""
    click.echo(
        f"{stats['prompts']} prompts -> {stats['clusters']} clusters, {stats['flagged']} flagged "
        f"({stats.get('campaigns_new', 0)} new, {stats.get('campaigns_grown', 0)} grown){written}"
    )
    table = Table()
    for name in ("cluster", "score", "size", "accounts", "per acct", "diversity", "change", "template"):
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=100 if name == "template" else None)
    for c in [c for c in clusters if c["flagged"]][:20]:
        f = c["features"]
        table.add_row(
            c["cluster_id"],
            f"{c['campaign_score']:.2f}",
            str(c["size"]),
            str(c["accounts"]),
            f"{f['prompts_per_account']:.1f}",
            f"{f['semantic_diversity']:.2f}",
            c.get("change", ""),
            Text(c["template"][:200]),
        )
    _console.print(table)

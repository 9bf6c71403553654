"""The promptsim command line: the `main` group and the index commands it defines here.

Defined here: ingest, delete, stats, dedup, accounts, report, rebuild, demo. Registered from
their own modules: search (cli_search.py); serve, keys, purge, snapshot, audit, models
(cli_admin.py); verdict, verdicts, alerts, export (cli_triage.py). `promptsim --help` lists
them all; every command's `--help` carries an example (tests/api/test_cli.py).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import click

import promptsim
from indexer import answers
from indexer.ingest_check import DEFAULT_MAX_SKIPPED
from indexer.verdicts import TriageSettings
from search.embedding import SentenceTransformerEncoder
from search.engine import SearchEngine
from search.errors import InputRejected, PromptSimError, StorageFailed
from search.index import PromptIndex
from search.manifest import IndexSettings, read_manifest
from search.vectors import KINDS

from . import output
from .alert_options import triage_options, webhook_options
from .cli_common import index_option, open_index, to_epoch
from .disclosure import reveal_to_operator as reveal
from .webhook import Webhook

DEMO_DATA = Path("data/demo/prompts.jsonl")
DEMO_QUERIES = Path("data/demo/queries.jsonl")


class _Group(click.Group):
    """Converts promptsim's errors into one clear message and exit code 1, once, here."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (PromptSimError, ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
        except (OSError, sqlite3.OperationalError) as err:  # a full or read-only disk: say so, no traceback
            storage = StorageFailed.from_error(err)
            if storage is None:
                raise
            raise click.ClickException(str(storage)) from err


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
@click.version_option(package_name="promptsim")
def main(verbose: bool) -> None:
    """promptsim: find near-duplicate and templated prompts spread across accounts.

    \b
    Example:
        promptsim ingest data/demo/prompts.jsonl --index idx
        promptsim search --index idx "Before answering, write out your reasoning..."
    """
    os.umask(0o077)  # every file promptsim creates (index, keys, audit, snapshots, reports) is its owner's alone
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def engine_options(func: Any) -> Any:
    func = click.option(
        "--ray-address",
        envvar="RAY_ADDRESS",
        help="Ray cluster to join (e.g. ray://head:10001, or 'auto') [env: RAY_ADDRESS; default: a local cluster].",
    )(func)
    return click.option(
        "--engine",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="Run on this machine, or on a Ray cluster (pip install 'promptsim[ray]'; same results).",
    )(func)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@index_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    help="Input format (default: from the file name).",
)
@click.option("--id-field", default="id", show_default=True, help="Column holding the prompt id.")
@click.option("--text-field", default="text", show_default=True, help="Column holding the prompt text.")
@click.option("--account-field", default="account_id", show_default=True, help="Column holding the account id.")
@click.option(
    "--time-field", default="timestamp", show_default=True, help="Column holding ISO-8601 or an epoch number."
)
@click.option(
    "--time-unit",
    type=click.Choice(["auto", "s", "ms", "us", "ns"]),
    default="auto",
    show_default=True,
    help="Unit of epoch numbers; auto tells seconds, ms, us and ns apart by magnitude (any time after "
    "March 1973). ISO-8601 without a zone is taken as UTC.",
)
@click.option("--strict", is_flag=True, help="Stop at the first bad record instead of skipping it.")
@click.option(
    "--max-skipped",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_MAX_SKIPPED,
    show_default=True,
    help="Exit 1 when more than this share of the records is skipped (the valid ones are stored all the "
    "same). A non-empty file with no valid record always fails.",
)
@click.option(
    "--model",
    help="Embedding model for a new index: all-MiniLM-L6-v2 (bundled transformer, the default), "
    "static-minilm (distilled from it, ~40x faster: the bulk path), a local path or a hub name.",
)
@click.option("--num-perm", type=int, help="MinHash permutations for a new index [default: 128].")
@click.option("--lsh-threshold", type=float, help="LSH Jaccard threshold for a new index [default: 0.5].")
@click.option(
    "--vector-index",
    type=click.Choice(KINDS),
    help="FAISS index kind [default: auto: exact below 50,000 prompts, IVF-Flat from there, ivf-fp16 "
    "(vectors as half floats, 2x smaller) from 1M].",
)
@click.option("--retention-days", type=float, help="For a new index: purge prompts older than this (nightly).")
@click.option("--batch-size", default=256, show_default=True, help="Prompts per stored batch (one transaction).")
@click.option(
    "--checkpoint-every",
    default=20_000,
    show_default=True,
    help="Save the FAISS/LSH files after this many new prompts, or a quarter of the index if more "
    "(bounds replay work after a crash).",
)
@click.option(
    "--workers",
    type=int,
    default=0,
    help="Processes computing embeddings and MinHash [default: every core for the static model, 1 for MiniLM, "
    "whose torch already uses every core].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@engine_options
def ingest(
    paths: tuple[str, ...],
    index_dir: Path,
    fmt: str | None,
    id_field: str,
    text_field: str,
    account_field: str,
    time_field: str,
    time_unit: str,
    strict: bool,
    max_skipped: float,
    model: str | None,
    num_perm: int | None,
    lsh_threshold: float | None,
    vector_index: str | None,
    retention_days: float | None,
    batch_size: int,
    checkpoint_every: int,
    workers: int,
    as_json: bool,
    engine: str,
    ray_address: str | None,
) -> None:
    """Add prompt logs (JSONL, CSV, Parquet) to an index, creating it if needed.

    Re-ingesting a file changes nothing (upsert by id). Bad records are reported with
    file and line, and skipped. Exits 1, with the reason and the fix, when a non-empty file
    gave no valid record (a column named otherwise, a unit mix-up) or more than --max-skipped
    of the records were skipped; an index this run created stays absent if nothing was stored.
    Columns other than the four fields are kept as metadata. With --engine ray, PATHS may also
    be directories or URIs (s3://, gs://, hdfs://: any filesystem pyarrow supports), read in
    parallel on the cluster.

    \b
    Example:
        promptsim ingest logs/2026-11-*.jsonl --index idx
        promptsim ingest dump.csv --index idx --text-field prompt --time-field created_at
        promptsim ingest events.parquet --index idx --time-unit ms
        promptsim ingest s3://logs/2026-11-20/ --index idx --engine ray --ray-address auto
        promptsim ingest nightly/*.parquet --index bulk-idx --model static-minilm
    """
    from indexer.reader import FieldMap

    settings = _settings(
        index_dir,
        model=model,
        num_perm=num_perm,
        lsh_threshold=lsh_threshold,
        vector_index=vector_index,
        retention_days=retention_days,
    )
    fields = FieldMap(id_field, text_field, account_field, time_field)
    if engine == "local":
        for given in paths:
            if not Path(given).is_file():
                raise click.BadParameter(f"'{given}' is not a file (directories and URIs need --engine ray)")
    try:
        if engine == "ray":
            options = dict(batch_size=batch_size, checkpoint_every=checkpoint_every, strict=strict, time_unit=time_unit)
            report = _ray_ingest(index_dir, list(paths), settings, fields, fmt, options, ray_address, max_skipped)
        else:
            report = promptsim.ingest(
                index_dir,
                list(paths),
                format=fmt,
                fields=fields,
                time_unit=time_unit,
                strict=strict,
                max_skipped=max_skipped,
                settings=settings,
                batch_size=batch_size,
                checkpoint_every=checkpoint_every,
                workers=workers,
                progress=sys.stderr.isatty() or not as_json,
            )
    except InputRejected as err:
        if err.report is not None:  # what was read and stored, then (on stderr, last) why it failed
            _ingest_report(err.report, as_json, problems=3, index_line=bool(err.report.index.get("prompts")))
        raise click.ClickException(str(err)) from err
    _ingest_report(report, as_json)


def _ingest_report(report: Any, as_json: bool, *, problems: int = 20, index_line: bool = True) -> None:
    counts = {"prompts": 0, "vectors": 0, "signatures": 0, "accounts": 0, **report.index}
    body = {**report.to_json(), **counts}
    if as_json:
        output.echo_json(body)
    else:
        output.ingest_report(body, problems=problems, index_line=index_line)


def _ray_ingest(
    index_dir: Path,
    paths: list[str],
    settings: IndexSettings,
    fields: Any,
    fmt: str | None,
    options: dict[str, Any],
    ray_address: str | None,
    max_skipped: float,
) -> Any:
    """The same ingest on a Ray cluster, judged by the same rules (promptsim.ingest's, on one machine)."""
    from functools import partial

    from indexer.distributed import ray_cluster
    from indexer.distributed.ingest import RayIngestOptions, ray_ingest
    from promptsim._index import writable_index
    from promptsim._ingest import checked

    with writable_index(index_dir, settings) as index, ray_cluster(ray_address) as cluster:
        factory = partial(SentenceTransformerEncoder, settings.model)
        report = ray_ingest(index, paths, factory, cluster, fmt=fmt, fields=fields, options=RayIngestOptions(**options))
        return checked(report, fields, max_skipped)


def _settings(index_dir: Path, **given: Any) -> IndexSettings:
    """The manifest's settings (or the defaults), with the options the user gave."""
    base = read_manifest(index_dir).settings if (index_dir / "manifest.json").exists() else IndexSettings()
    return replace(base, **{k: v for k, v in given.items() if v is not None})


@main.command()
@index_option
@click.option("--id", "ids", multiple=True, help="Prompt id to delete (repeatable).")
@click.option("--account", help="Delete every prompt of this account.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def delete(index_dir: Path, ids: tuple[str, ...], account: str | None, as_json: bool) -> None:
    """Remove prompts by id or by account from the store, FAISS and the LSHs.

    Exits 1 when an id is not stored, or the account has no prompts: nothing (or not all that
    was asked) was deleted. The ones that were stored are deleted all the same.

    \b
    Example:
        promptsim delete --index idx --id p000123 --id p000124
        promptsim delete --index idx --account acct-0042
    """
    if bool(ids) == bool(account):
        raise click.UsageError("give --id ID... or --account ACCOUNT")
    deleted = promptsim.delete(index_dir, ids=list(ids), account_id=account)
    body = {"deleted": deleted.deleted, "missing": list(deleted.missing), **deleted.index}
    if as_json:
        output.echo_json(body)
    else:
        click.echo(f"deleted {deleted.deleted} prompts; {body['prompts']} remain")
    if deleted.missing:
        shown = ", ".join(map(repr, deleted.missing[:10])) + (" …" if len(deleted.missing) > 10 else "")
        raise click.ClickException(
            f"not stored, so not deleted: {shown} ({len(deleted.missing)} of the {len(set(ids))} ids given); "
            f"check them with 'promptsim search --index {index_dir} --id ID'"
        )


@main.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(index_dir: Path, as_json: bool) -> None:
    """Counts, accounts, time range and settings of an index.

    `vectors` and `signatures` count what FAISS and the LSH actually hold.

    \b
    Example:
        promptsim stats --index idx --json
    """
    with open_index(index_dir, with_encoder=False) as index:
        body = asdict(answers.index_stats(index))  # GET /v1/stats answers from the same function
    if as_json:
        output.echo_json(body)
    else:
        output.key_values(body)


@main.command()
@index_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="clusters.jsonl to write.")
@click.option("--since", help="Window start (ISO-8601 or epoch), inclusive.")
@click.option("--until", help="Window end (ISO-8601 or epoch), exclusive.")
@click.option("--incremental", is_flag=True, help="Reuse the last run: only look for edges of newer prompts.")
@click.option(
    "--history",
    is_flag=True,
    help="With --since/--until: cluster the window's prompts together with their nearest siblings from the "
    "whole index (a day against months of history, without deduplicating the months).",
)
@click.option(
    "--flag-threshold", type=float, help="campaign_score at which a cluster is flagged [default: calibrated]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option(
    "--families/--no-families",
    default=True,
    show_default=True,
    help="Mine wrappers and group campaign families across rewordings and languages (one machine only).",
)
@engine_options
@triage_options
@webhook_options
def dedup(
    index_dir: Path,
    out: Path,
    since: str | None,
    until: str | None,
    incremental: bool,
    history: bool,
    flag_threshold: float | None,
    as_json: bool,
    families: bool,
    engine: str,
    ray_address: str | None,
    triage: TriageSettings,
    webhook: Webhook | None,
) -> None:
    """Cluster a window of traffic into near-duplicate and template clusters; flag campaigns.

    Writes one line per cluster of two or more prompts; cluster ids stay stable across runs.

    \b
    Example:
        promptsim dedup --index idx --out clusters.jsonl --since 2026-11-20 --until 2026-11-21
        promptsim dedup --index idx --out clusters.jsonl --incremental     # hourly
        promptsim dedup --index idx --out day.jsonl --since 2026-11-20 --until 2026-11-21 --history
        promptsim dedup --index idx --out clusters.jsonl --engine ray --no-families   # on a Ray cluster
        promptsim dedup --index idx --out clusters.jsonl --alert-webhook https://hooks.example/x \\
            --alert-secret-file alert.secret   # a signed alert per new, grown or regrown campaign
    """
    for flag, given in (("--incremental", incremental), ("--history", history)):
        if engine == "ray" and given:
            raise click.UsageError(f"{flag} runs on one machine; drop --engine ray")
    if history and incremental:
        raise click.UsageError("--history clusters a window with its siblings afresh; drop --incremental")
    if engine == "ray" and families:
        raise click.UsageError(
            "wrapper families run on one machine only for now; add --no-families to dedup on Ray, or drop --engine ray"
        )
    from indexer.campaigns import cluster_lines, nightly, write_jsonl
    from indexer.dedup import DedupSettings
    from indexer.retention import purge

    triage = replace(triage, alert_url=None if webhook is None else webhook.url)
    settings = DedupSettings(families=families)
    if flag_threshold is not None:
        settings = DedupSettings(families=families, flag_threshold=flag_threshold)
    if read_manifest(index_dir).settings.retention_days is not None:
        with open_index(index_dir, with_encoder=False, writable=True) as index:
            purged = purge(index)
        click.echo(
            f"retention: purged {purged['removed']} prompts older than {purged['older_than_days']:g} days", err=True
        )
    # dedup reads the store alone; --history also looks the window up in the LSHs and FAISS
    with open_index(index_dir, with_encoder=False, structures=history) as index:
        if engine == "ray":
            from indexer.distributed import ray_cluster
            from indexer.distributed.dedup import ray_nightly

            with ray_cluster(ray_address) as cluster:
                clusters, stats = ray_nightly(
                    index, cluster, since=to_epoch(since), until=to_epoch(until), settings=settings, triage=triage
                )
        else:
            clusters, stats = nightly(
                index,
                since=to_epoch(since),
                until=to_epoch(until),
                settings=settings,
                incremental=incremental,
                triage=triage,
                history=history,
            )
        clusters.sort(key=lambda c: (-c["campaign_score"], c["cluster_id"]))  # best first, as every listing
        lines = reveal(index_dir, "cli dedup --out", {"out": str(out)}, cluster_lines(index, clusters))
        write_jsonl(out, lines)
    if webhook is not None:
        from .cli_triage import deliver_now

        deliver_now(index_dir, webhook)
    if as_json:
        output.echo_json(stats)
    else:
        output.dedup_summary(stats, clusters, out)


@main.command()
@index_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="accounts.jsonl to write.")
def accounts(index_dir: Path, out: Path) -> None:
    """Per account in a flagged campaign: its clusters, traffic share, and linked accounts.

    Reads the clusters of the last `promptsim dedup` run.

    \b
    Example:
        promptsim accounts --index idx --out accounts.jsonl
    """
    from indexer.campaigns import account_records, write_jsonl

    with open_index(index_dir, with_encoder=False) as index:
        records = account_records(index)
    write_jsonl(out, records)
    click.echo(f"wrote {len(records)} accounts in flagged clusters to {out}")


@main.command()
@index_option
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory for index.html."
)
@click.option("--top", default=25, show_default=True, help="How many flagged campaigns to show.")
def report(index_dir: Path, out: Path, top: int) -> None:
    """Write an HTML report of the last dedup run: templates, accounts, volume charts, why flagged.

    \b
    Example:
        promptsim report --index idx --out report/ && xdg-open report/index.html
    """
    from indexer.report import build_report

    with open_index(index_dir, with_encoder=False) as index:
        path = build_report(
            index, out, top=top, reveal=lambda shown: reveal(index_dir, "cli report", {"top": top}, shown)
        )
    click.echo(f"wrote {path}")


@main.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--vector-index",
    type=click.Choice(KINDS),
    help="Switch the index's FAISS kind from now on (e.g. ivf-fp16: vectors as half floats, 2x smaller) "
    "[default: keep it].",
)
def rebuild(index_dir: Path, as_json: bool, vector_index: str | None) -> None:
    """Regenerate the FAISS and LSH files from the store: after corruption, a crash, or an older index format.

    The store (prompts.sqlite) is the truth and holds every prompt's signals: whatever state
    vectors.faiss, lsh.npz and windows.npz are in (damaged, missing, or laid out by an older
    index format), they are written again from it, and the manifest takes this release's
    format. Nothing is embedded again.

    \b
    Example:
        promptsim rebuild --index idx
        promptsim rebuild --index idx --vector-index ivf-fp16   # half the vectors' memory
    """
    counts = promptsim.rebuild(index_dir, vector_index=vector_index)
    if as_json:
        output.echo_json(counts)
    else:
        click.echo(
            f"rebuilt FAISS and the LSHs of {index_dir} from the store: {counts['prompts']} prompts, "
            f"{counts['vectors']} vectors, {counts['signatures']} signatures, {counts['accounts']} accounts"
        )


@main.command()
@click.option(
    "--index",
    "index_dir",
    default=Path(".promptsim-demo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to build the demo index.",
)
@click.option("--data", default=DEMO_DATA, show_default=True, type=click.Path(path_type=Path), help="Demo prompts.")
@click.option("--query", help="Prompt to search for [default: a fresh campaign prompt from data/demo/queries.jsonl].")
@click.option("-k", default=10, show_default=True, help="How many hits to show.")
def demo(index_dir: Path, data: Path, query: str | None, k: int) -> None:
    """Ingest the bundled demo prompts, search an example suspicious prompt, and flag campaigns.

    \b
    Example:
        promptsim demo
        promptsim demo --query "Act as a senior tax lawyer and ..."
    """
    from indexer.ingest import ingest_files

    if not data.exists():
        raise click.ClickException(f"demo data {data} not found; run this from the promptsim repository")
    encoder = SentenceTransformerEncoder()
    with PromptIndex.open(index_dir, encoder, writable=True, create=True) as index:
        report = ingest_files(index, [data])
        click.echo(f"indexed {index.counts()['prompts']} prompts ({report.added} new) into {index_dir}\n")
        text = query or _demo_query()
        click.echo(f"query: {' '.join(text.split())[:300]}\n")
        output.search_answer(answers.answer(index, SearchEngine(index).similar(text, k), full=True), text)
        from indexer.campaigns import nightly

        clusters, stats = nightly(index)
        click.echo("\nnightly dedup of the same data (promptsim dedup):")
        output.dedup_summary(stats, clusters, None)


def _demo_query() -> str:
    with open(DEMO_QUERIES, encoding="utf-8") as handle:
        return str(json.loads(handle.readline())["text"])


def _register_admin_commands() -> None:
    from .cli_admin import audit, keys, models, purge_command, serve, snapshot
    from .cli_search import search
    from .cli_triage import alerts, export, verdict, verdicts

    for command in (search, serve, keys, purge_command, snapshot, audit, models, verdict, verdicts, alerts, export):
        main.add_command(command)


_register_admin_commands()

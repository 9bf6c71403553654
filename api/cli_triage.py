"""The promptsim CLI's triage commands: verdict, verdicts, alerts (test, deliver, status), export.

Registered on the main group by api/cli.py (docs/verdicts.md says how the pieces fit).
"""

from __future__ import annotations

import getpass
import secrets
import time
from dataclasses import asdict, replace
from pathlib import Path

import click

from indexer.alerts import probe_alert
from indexer.triage_store import TriageStore
from indexer.verdicts import record_verdict
from search.manifest import read_manifest

from . import output, triage
from .alert_options import webhook_options
from .cli_common import index_option, open_index, to_epoch
from .disclosure import OPERATOR
from .webhook import Courier, Webhook, send


@click.command()
@index_option
@click.option("--cluster", "cluster_id", required=True, help="A cluster id of the last dedup run.")
@click.option("--confirm", "verdict", flag_value="confirmed", help="A campaign: watch its family from now on.")
@click.option("--dismiss", "verdict", flag_value="dismissed", help="Benign: do not flag its family again.")
@click.option("--note", required=True, help="Why: who runs it, what it is (kept with the verdict).")
@click.option("--by", "by_name", help="Who decided [default: your user name].")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verdict(
    index_dir: Path, cluster_id: str, verdict: str | None, note: str, by_name: str | None, as_json: bool
) -> None:
    """Record an analyst's verdict on a flagged cluster's family (it follows the family into later runs).

    A dismissed family is not flagged again unless it regrows (see `dedup --regrowth`); a
    confirmed one goes on the watchlist: its new prompts get verdict "campaign" at ingest.

    \b
    Example:
        promptsim verdict --index idx --cluster c1a2b3c4d5e --dismiss --note "partner eval harness (ACME)"
        promptsim verdict --index idx --cluster c9f8e7d6c5b --confirm --note "reasoning-trace harvesting"
    """
    if verdict is None:
        raise click.UsageError("give --confirm or --dismiss")
    who = replace(OPERATOR, name=by_name or f"cli:{getpass.getuser()}")
    with open_index(index_dir, with_encoder=False) as index, TriageStore(index_dir) as store:
        made = triage.record(
            index_dir,
            who,
            "cli verdict",
            cluster_id,
            lambda: record_verdict(
                index_dir, index.store, store, cluster_id, str(verdict), note, by_key=who.key_id, by_name=who.name
            ),
        )
    if made is None:
        raise click.ClickException(f"no cluster {cluster_id!r} in the last dedup run; see 'promptsim dedup'")
    if as_json:
        output.echo_json(asdict(made))
    elif made.verdict == "confirmed":
        click.echo(f"confirmed family {made.family_id} (cluster {cluster_id}): on the watchlist from now on")
    else:
        click.echo(f"dismissed family {made.family_id} (cluster {cluster_id}): not flagged again unless it regrows")


@click.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def verdicts(index_dir: Path, as_json: bool) -> None:
    """List every verdict, newest first: who, when, why, on which family.

    \b
    Example:
        promptsim verdicts --index idx --json
    """
    read_manifest(index_dir)
    with TriageStore(index_dir) as store:
        found = store.verdicts(limit=1_000_000)
    for v in found:
        if as_json:
            output.echo_json(asdict(v), indent=None)
        else:
            click.echo(f"{v.at}  {v.verdict:9}  {v.family_id}  {v.cluster_id}  by {v.by}: {v.note}")


@click.group()
def alerts() -> None:
    """Signed webhook alerts: send a test, deliver what is queued, see the queue.

    \b
    Example:
        promptsim alerts test --alert-webhook https://hooks.example/x --alert-secret-file alert.secret
    """


@alerts.command("test")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), help="Name it in the alert.")
@webhook_options
def alerts_test(index_dir: Path | None, webhook: Webhook | None) -> None:
    """Send one signed test alert now and say what the receiver answered.

    \b
    Example:
        openssl rand -hex 32 > alert.secret && chmod 600 alert.secret
        promptsim alerts test --alert-webhook https://hooks.example/x --alert-secret-file alert.secret
    """
    if webhook is None:
        raise click.UsageError("give --alert-webhook URL and --alert-secret-file FILE")
    import httpx

    payload = probe_alert(index_dir.name if index_dir else "promptsim", secrets.token_hex(8))
    with httpx.Client(timeout=10.0) as client:
        error = send(client, webhook, payload)
    if error is not None:
        raise click.ClickException(f"the webhook did not take the test alert: {error}")
    click.echo(f"delivered test alert {payload['id']} to {webhook.url}")


@alerts.command("deliver")
@index_option
@webhook_options
@click.option(
    "--wait", default=0.0, show_default=True, help="Keep retrying (with backoff) for up to this many seconds."
)
def alerts_deliver(index_dir: Path, webhook: Webhook | None, wait: float) -> None:
    """Deliver the alerts queued for this webhook (e.g. while the receiver was down), oldest first.

    \b
    Example:
        promptsim alerts deliver --index idx --alert-webhook https://hooks.example/x \\
            --alert-secret-file alert.secret --wait 300
    """
    if webhook is None:
        raise click.UsageError("give --alert-webhook URL and --alert-secret-file FILE")
    read_manifest(index_dir)
    deliver_now(index_dir, webhook, wait=wait)


@alerts.command("status")
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def alerts_status(index_dir: Path, as_json: bool) -> None:
    """How many alerts are queued and delivered.

    \b
    Example:
        promptsim alerts status --index idx
    """
    read_manifest(index_dir)
    with TriageStore(index_dir) as store:
        counts = store.outbox_counts()
    if as_json:
        output.echo_json(counts)
    else:
        click.echo(f"{counts['pending']} alerts queued, {counts['delivered']} delivered")


def deliver_now(index_dir: Path, webhook: Webhook, *, wait: float = 0.0) -> None:
    """Deliver what is queued for webhook, retrying with backoff for up to wait seconds; report on stderr."""
    courier = Courier(index_dir, webhook)
    deadline, failures, sent = time.monotonic() + wait, 0, 0
    try:
        while True:
            delivered, error = courier.deliver()
            sent += delivered
            if error is None:
                break
            pause = courier.delay(failures)
            failures += 1
            if time.monotonic() + pause > deadline:
                with TriageStore(index_dir) as store:
                    left = store.outbox_counts(webhook.url)["pending"]
                click.echo(
                    f"alerts: {sent} delivered; {left} queued in {index_dir}/triage.sqlite ({error}); they go out "
                    "with 'promptsim alerts deliver', the next dedup, or 'promptsim serve --alert-webhook'",
                    err=True,
                )
                return
            time.sleep(pause)
    finally:
        courier.close()
    click.echo(f"alerts: {sent} delivered to {webhook.url}", err=True)


@click.command()
@index_option
@click.option("--since", help="Only campaigns last seen at or after this time (ISO-8601 or epoch).")
@click.option("--format", "fmt", type=click.Choice(["ocsf", "jsonl"]), default="ocsf", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="File to write [default: stdout].")
@click.option("--raw", is_flag=True, help="Templates unmasked (default: emails, keys, phones... masked).")
def export(index_dir: Path, since: str | None, fmt: str, out: Path | None, raw: bool) -> None:
    """Write flagged campaigns and the accounts in them for a SIEM: OCSF Detection Findings or JSON lines.

    One OCSF 1.1 Detection Finding (class_uid 2004) per flagged campaign of the last dedup run and
    per account in one. Templates are masked unless --raw; the export is audit-logged.

    \b
    Example:
        promptsim export --index idx --since 2026-11-20 --format ocsf --out findings.ocsf.jsonl
        promptsim export --index idx --format jsonl | jq .kind
    """
    from .export import findings, write_lines

    with open_index(index_dir, with_encoder=False) as index:
        written = write_lines(findings(index, since=to_epoch(since), fmt=fmt, raw=raw), out)
    if out is not None:
        click.echo(f"wrote {written} findings to {out}", err=True)

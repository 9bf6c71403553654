"""The promptsim CLI's operations commands: serve, keys, purge, snapshot, audit, models.

Registered on the main group by api/cli.py; split out to keep each module to one job.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from search.manifest import read_manifest
from search.records import to_iso

from . import output
from .alert_options import webhook_options
from .cli_common import index_option, open_index, to_epoch
from .webhook import Webhook


@click.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, help="Worker processes (each loads the index).")
@click.option(
    "--keys", "keys_file", type=click.Path(dir_okay=False, path_type=Path), help="Keys file [default: DIR/keys.json]."
)
@click.option("--insecure-dev", is_flag=True, help="Serve without keys: local development on 127.0.0.1 only.")
@click.option(
    "--anonymous-rate",
    default=2.0,
    show_default=True,
    help="Requests per second per client address without a valid key (sign-in, docs, health, 401s).",
)
@click.option("--tls-certfile", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate.")
@click.option("--tls-keyfile", type=click.Path(exists=True, dir_okay=False), help="The certificate's private key.")
@click.option("--behind-tls", is_flag=True, help="A TLS proxy terminates HTTPS in front: mark cookies Secure.")
@webhook_options
@click.option(
    "--alert-batch-seconds", default=60.0, show_default=True, help="Watchlist hits are sent as one alert this often."
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests each worker runs at once; more wait their turn (searches all want Python's GIL).",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request's line to stderr (disclosures are in DIR/audit.jsonl, counts at /metrics either way).",
)
def serve(
    index_dir: Path,
    host: str,
    port: int,
    workers: int,
    keys_file: Path | None,
    insecure_dev: bool,
    anonymous_rate: float,
    tls_certfile: str | None,
    tls_keyfile: str | None,
    behind_tls: bool,
    webhook: Webhook | None,
    alert_batch_seconds: float,
    threads: int,
    access_log: bool,
) -> None:
    """Serve the HTTP API and the analyst UI (OpenAPI at /openapi.json, docs at /docs).

    Rate limits are per key (set by `keys create --rate`) and shared by every worker.

    \b
    Example:
        promptsim keys create --index idx --name analyst --scopes read --rate 5
        promptsim serve --index idx --port 8000 --workers 2
        promptsim serve --index idx --host 0.0.0.0 --tls-certfile cert.pem --tls-keyfile key.pem
        promptsim serve --index idx --alert-webhook https://hooks.example/x --alert-secret-file alert.secret
    """
    import os

    import uvicorn

    from .app import check_startup
    from .settings import Settings

    secure = behind_tls or tls_certfile is not None
    settings = Settings(
        index_dir,
        keys_file,
        insecure_dev,
        host=host,
        anonymous_rate=anonymous_rate,
        secure_cookies=secure,
        alert_webhook=None if webhook is None else webhook.url,
        alert_secret_file=None if webhook is None else webhook.secret_file,
        alert_batch_seconds=alert_batch_seconds,
        worker_threads=threads,
    )
    check_startup(settings)  # refuse to start (no index, no keys, unsafe --insecure-dev) before forking workers
    if insecure_dev:
        click.secho(
            "INSECURE DEV MODE: serving without keys on loopback; never expose this server.", fg="red", err=True
        )
    os.environ.update(settings.to_env())
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,  # a line per search costs ~4% of a worker's time at full load
        ssl_certfile=tls_certfile,
        ssl_keyfile=tls_keyfile,
    )


@click.group()
def keys() -> None:
    """Manage API keys (stored hashed in DIR/keys.json).

    \b
    Example:
        promptsim keys create --index idx --name detector --scopes read,write
    """


def _key_store(index_dir: Path, keys_file: Path | None):  # type: ignore[no-untyped-def]
    from .keys import KEYS_FILE, KeyStore

    read_manifest(index_dir)
    return KeyStore(keys_file or index_dir / KEYS_FILE)


keys_file_option = click.option(
    "--keys", "keys_file", type=click.Path(dir_okay=False, path_type=Path), help="Keys file [default: DIR/keys.json]."
)


@keys.command("create")
@index_option
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option(
    "--scopes", required=True, help="Comma-separated: read[,write][,admin][,raw][,triage] (triage: record verdicts)."
)
@click.option("--rate", default=10.0, show_default=True, help="Requests per second this key may make (all workers).")
@click.option("--burst", type=int, help="Requests it may make at once [default: twice the rate].")
@keys_file_option
def keys_create(
    index_dir: Path, name: str, scopes: str, rate: float, burst: int | None, keys_file: Path | None
) -> None:
    """Create a key; it is printed once, alone on the last line.

    \b
    Example:
        promptsim keys create --index idx --name analyst --scopes read --rate 5
        promptsim keys create --index idx --name detector --scopes read,write --rate 500
    """
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    token = _key_store(index_dir, keys_file).create(name, wanted, rate=rate, burst=burst)
    click.echo(f"created key {name!r} ({scopes}); store it now, it is not shown again:", err=True)
    click.echo(token)


@keys.command("list")
@index_option
@keys_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys_list(index_dir: Path, keys_file: Path | None, as_json: bool) -> None:
    """List keys (names, ids, scopes; never secrets).

    \b
    Example:
        promptsim keys list --index idx
    """
    rows = [
        {
            "name": k.name,
            "key_id": k.key_id,
            "scopes": ",".join(k.scopes),
            "rate": k.rate,
            "created": to_iso(k.created_at),
            "revoked": k.revoked,
        }
        for k in _key_store(index_dir, keys_file).records()
    ]
    if as_json:
        output.echo_json(rows)
    else:
        for row in rows:
            click.echo(
                f"{row['name']:<20} {row['key_id']:<14} {row['scopes']:<18} {row['created']}"
                f"{'  revoked' if row['revoked'] else ''}"
            )


@keys.command("revoke")
@index_option
@click.option("--name", required=True, help="Name of the key to revoke.")
@keys_file_option
def keys_revoke(index_dir: Path, name: str, keys_file: Path | None) -> None:
    """Revoke a key by name (servers stop accepting it at once).

    \b
    Example:
        promptsim keys revoke --index idx --name analyst
    """
    n = _key_store(index_dir, keys_file).revoke(name)
    click.echo(f"revoked {n} key(s) named {name!r}")


@click.command("purge")
@index_option
@click.option("--older-than", help="Age such as 2w, 30d, 12h, 90m or 45s [default: the index's retention period].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def purge_command(index_dir: Path, older_than: str | None, as_json: bool) -> None:
    """Remove prompts older than an age from the store, FAISS, the LSHs and cluster member lists.

    Prints the cutoff (now minus the age, UTC): prompts with an earlier timestamp were removed.
    Searches keep running while it works (servers replay the deletions).

    \b
    Example:
        promptsim purge --index idx --older-than 30d
        promptsim purge --index idx --older-than 2w --json
    """
    from indexer.retention import parse_age, purge

    with open_index(index_dir, with_encoder=False, writable=True) as index:
        body = {**purge(index, None if older_than is None else parse_age(older_than)), **index.counts()}
    body["cutoff_iso"] = to_iso(body["cutoff"])
    if as_json:
        output.echo_json(body)
    else:
        click.echo(
            f"purged {body['removed']} prompts older than {body['older_than_days']:g} days "
            f"(timestamp before {body['cutoff_iso']}); {body['prompts']} remain"
        )


@click.group()
def snapshot() -> None:
    """Consistent point-in-time copies of an index's data, signed with DIR/snapshot.key.

    \b
    Example:
        promptsim snapshot create --index idx --out idx-2026-11-28.snapshot
        promptsim snapshot restore idx-2026-11-28.snapshot --index idx-restored --key-file idx/snapshot.key
    """


@snapshot.command("create")
@index_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Snapshot file to write.")
def snapshot_create(index_dir: Path, out: Path) -> None:
    """Snapshot an index while it keeps serving and ingesting.

    \b
    Example:
        promptsim snapshot create --index idx --out nightly.snapshot
    """
    from indexer.snapshots import create_snapshot

    read_manifest(index_dir)
    body = create_snapshot(index_dir, out)
    click.echo(f"wrote {out} (sha256 {body['sha256'][:16]}…, {len(body['files'])} files)")


@snapshot.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@index_option
@click.option(
    "--force",
    is_flag=True,
    help="Restore into a directory that holds an index: its index data (prompts, FAISS, LSHs, clusters) is "
    "replaced; keys, sessions, the audit log and the snapshot key stay.",
)
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The snapshot key it was signed with [default: DIR/snapshot.key].",
)
def snapshot_restore(file: Path, index_dir: Path, force: bool, key_file: Path | None) -> None:
    """Verify a snapshot's signature and checksums and restore its index data into a directory.

    The directory must be new or empty, unless --force. Keys, sessions and the audit log are not
    in snapshots: a restore leaves them as they are. A refused restore changes nothing (a new
    directory is not left behind). Prompts deleted after the snapshot was taken stay deleted.

    \b
    Example:
        promptsim snapshot restore nightly.snapshot --index idx --force
        promptsim snapshot restore nightly.snapshot --index idx-copy --key-file idx/snapshot.key
    """
    from indexer.snapshots import restore_snapshot

    restore_snapshot(file, index_dir, force=force, key_file=key_file)
    with open_index(index_dir, with_encoder=False) as index:
        report = index.verify()
    state = "consistent" if report["consistent"] else "INCONSISTENT: run 'promptsim rebuild --index DIR'"
    click.echo(f"restored {report['store']} prompts into {index_dir}; store, FAISS and LSHs {state}")


@click.command()
@index_option
@click.option("--since", help="Only reads at or after this time (ISO-8601 or epoch).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def audit(index_dir: Path, since: str | None, as_json: bool) -> None:
    """Show who was shown prompt text (API, UI, CLI), raw or masked, and for what query.

    \b
    Example:
        promptsim audit --index idx --since 2026-11-27
    """
    from .audit import AUDIT_FILE

    read_manifest(index_dir)
    start = to_epoch(since) or 0.0
    path = index_dir / AUDIT_FILE
    text = path.read_text("utf-8") if path.exists() else ""
    lines = [json.loads(line) for line in text.splitlines() if line]  # entries are ASCII: one per line
    for entry in (e for e in lines if e["time"] >= start):
        if as_json:
            output.echo_json(entry, indent=None)
        else:
            click.echo(
                f"{to_iso(entry['time'])}  {entry['key_name']:<16} {entry['endpoint']:<26} "
                f"{entry['prompts_returned']:>5} prompts  {json.dumps(entry['query'])[:80]}"
            )


@click.group()
def models() -> None:
    """Embedding models: build the static (model2vec) model, list what is available.

    \b
    Example:
        promptsim models build            # distill static-minilm from the bundled MiniLM (offline, once)
        promptsim models list --json
    """


@models.command("build")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder [default: the cache].")
@click.option("--force", is_flag=True, help="Rebuild even if the cached model is there.")
def models_build(out: Path | None, force: bool) -> None:
    """Distill static-minilm from the bundled all-MiniLM-L6-v2 with model2vec, and export
    all-MiniLM-L6-v2 to ONNX for single queries (both offline, both cached).

    \b
    Example:
        promptsim models build
        PROMPTSIM_CACHE=/srv/promptsim promptsim models build --force
    """
    from search.embedding import SentenceTransformerEncoder
    from search.model_build import build_static_model
    from search.models import is_current_static_build, static_model_dir

    target = out or static_model_dir()
    if is_current_static_build(target) and not force:
        click.echo(f"static-minilm is already built in {target}")
    else:
        click.echo("distilling static-minilm from all-MiniLM-L6-v2 (each vocabulary token through MiniLM once)…")
        click.echo(f"built {build_static_model(target)}")
    runtime = SentenceTransformerEncoder().runtime  # exports the ONNX graph on first use
    click.echo(f"all-MiniLM-L6-v2 embeds single queries with {runtime}")


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models_list(as_json: bool) -> None:
    """Show the built-in models, their backends and whether each is ready offline.

    \b
    Example:
        promptsim models list
    """
    from search.models import DEFAULT_MODEL, STATIC_DIMS, STATIC_MODEL, is_current_static_build, static_model_dir

    rows = [
        {"model": DEFAULT_MODEL, "backend": "transformer", "dim": 384, "ready": True, "use": "analyst queries"},
        {
            "model": STATIC_MODEL,
            "backend": "static",
            "dim": STATIC_DIMS,
            "ready": is_current_static_build(static_model_dir()),
            "use": "bulk ingest and nightly clustering",
            "path": str(static_model_dir()),
        },
    ]
    if as_json:
        output.echo_json(rows)
        return
    for row in rows:
        state = "ready" if row["ready"] else "not built (promptsim models build)"
        click.echo(f"{row['model']:<18} {row['backend']:<12} {row['dim']:>4}-d  {state:<34} {row['use']}")

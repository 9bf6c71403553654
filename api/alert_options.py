"""Command-line options shared by `serve`, `dedup` and `alerts`: the webhook, and how verdicts follow families.

Decorators that turn the raw options into checked values, so each command gets a `Webhook`
(or None) and a `TriageSettings` and says nothing about files, modes or URLs itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from indexer.verdicts import TriageSettings

from .webhook import Webhook

F = Callable[..., Any]


def webhook_options(func: F) -> F:
    """--alert-webhook URL --alert-secret-file FILE, checked, passed on as webhook (None when absent)."""

    @functools.wraps(func)
    def wrapper(*args: Any, alert_webhook: str | None, alert_secret_file: Path | None, **kwargs: Any) -> Any:
        return func(*args, webhook=checked_webhook(alert_webhook, alert_secret_file), **kwargs)

    wrapper = click.option(
        "--alert-secret-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="File holding the HMAC secret that signs alerts (mode 600, or it is refused).",
    )(wrapper)
    return click.option(
        "--alert-webhook",
        metavar="URL",
        help="POST signed JSON alerts here (Slack-compatible `text`; X-Promptsim-Signature: sha256=HMAC of the body).",
    )(wrapper)


def checked_webhook(url: str | None, secret_file: Path | None) -> Webhook | None:
    """The webhook, or None; a URL without a secret file (or the reverse) is a usage error."""
    if (url is None) != (secret_file is None):
        raise click.UsageError("--alert-webhook and --alert-secret-file go together: give both, or neither")
    if url is None or secret_file is None:
        return None
    try:
        return Webhook.from_options(url, secret_file)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


def triage_options(func: F) -> F:
    """--regrowth and --account-change (how a dismissed family comes back), passed on as triage."""

    @functools.wraps(func)
    def wrapper(*args: Any, regrowth: float, account_change: float, **kwargs: Any) -> Any:
        try:
            settings = TriageSettings(regrowth=regrowth, account_change=account_change)
        except ValueError as err:
            raise click.BadParameter(str(err)) from err
        return func(*args, triage=settings, **kwargs)

    defaults = TriageSettings()
    for name, value, text in (
        ("--account-change", defaults.account_change, "when more than this share of its accounts is new."),
        ("--regrowth", defaults.regrowth, "past this multiple of its prompts per day."),
    ):
        helped = f"A dismissed family is flagged again (change: regrown) {text}"
        wrapper = click.option(name, type=float, default=value, show_default=True, help=helped)(wrapper)
    return wrapper

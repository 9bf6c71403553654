"""The edges over the engine: the `promptsim` CLI, the HTTP API and the analyst UI.

- CLI: `cli.py` (the `main` group: ingest, delete, stats, dedup, accounts, report, rebuild,
  demo), `cli_search.py` (search), `cli_admin.py` (serve, keys, purge, snapshot, audit,
  models), `cli_triage.py` (verdict, verdicts, alerts, export); `output.py` draws tables.
- HTTP: `app.py` builds the FastAPI app from `settings.py`; `routes/` holds one module per
  resource (search, prompts, clusters, verdicts, snapshots, system, docs, session, UI pages);
  `auth.py`, `keys.py`, `sessions.py`, `ratelimit.py` and `limits.py` guard it; `errors.py`
  gives the one error shape; `disclosure.py`, `redact.py` and `audit.py` mask prompt text and
  log who saw it (docs/api.md, docs/security.md).
- Triage: `triage.py` records a verdict (CLI, API, UI alike), audits and counts it; `webhook.py`
  sends signed alerts; `export.py` writes OCSF findings; `slots.py` marks what differs from a query.
Nothing below (`search/`, `indexer/`, `promptsim/`) imports from here.
"""

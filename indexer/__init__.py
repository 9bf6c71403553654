"""Jobs over an index, on top of the search library: ingest, delete, dedup, triage, answers.

- Ingest: `reader.py` streams JSONL, CSV and Parquet records; `ingest.py` embeds, MinHashes and
  stores them (in worker processes with `--workers`); `ingest_check.py` refuses an input that
  stored nothing; `erasure.py` and `retention.py` delete and purge; `snapshots.py` takes and
  restores signed snapshots.
- Nightly dedup (docs/campaigns.md): `dedup.py` finds the edges and clusters; `knn.py` the
  mutual nearest neighbours; `graph.py` the guarded union-find; `wrappers.py` and
  `families.py` mine wrappers and group campaign families; `templates.py` the templates;
  `coordination.py` and `features.py` the campaign score; `cluster_store.py` stable cluster
  ids; `campaigns.py` saves a run; `report.py` and `charts.py` the HTML report.
- Triage (docs/verdicts.md): `verdicts.py`, `watchlist.py`, `alerts.py`, `triage_store.py`.
- Reads for every edge: `service.py` (one worker's view of an index, kept in step with the
  store) and `answers.py` (verdicts, stats, prompt and cluster pages as typed records).
- `distributed/`: the same ingest and dedup on a Ray cluster (docs/scale-out.md).
"""

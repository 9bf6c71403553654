"""Jobs that write: ingest, delete, and (later) nightly dedup on top of the search library."""

"""The analyst's morning report: top campaigns as one self-contained HTML page with inline SVG charts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from search.index import PromptIndex
from search.manifest import STORE

from .charts import stacked_days_svg
from .cluster_store import ClusterStore


def build_report(index: PromptIndex, out_dir: Path, *, top: int = 25) -> Path:
    """Write out_dir/index.html for the last dedup run; returns its path."""
    store = ClusterStore(index.path / STORE)
    try:
        run = store.last_run()
        clusters = store.clusters()
    finally:
        store.close()
    if run is None:
        raise ValueError(f"no dedup run in {index.path}; run 'promptsim dedup --index {index.path} --out FILE' first")
    flagged = [c for c in clusters if c["flagged"]][:top]
    cards: list[dict[str, Any]] = []
    for c in flagged:
        times = index.store.timestamps_of(c["rows"])
        cards.append({**c, "chart": stacked_days_svg({"prompts": list(times.values())})})
    env = Environment(loader=PackageLoader("indexer", "templates_html"), autoescape=select_autoescape(["html"]))
    page = env.get_template("report.html").render(
        run=run,
        cards=cards,
        total=len(clusters),
        flagged=sum(c["flagged"] for c in clusters),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path

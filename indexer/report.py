"""The analyst's morning report: top campaigns as one self-contained HTML page with inline SVG charts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from search.index import PromptIndex
from search.manifest import STORE

from .charts import stacked_days_svg
from .cluster_records import Cluster
from .cluster_store import ClusterStore
from .private_files import write_private

# The edge that asks for a report passes its disclosure function: what it returns is what is written.
Reveal = Callable[[list[Cluster]], list[Cluster]]


@dataclass(frozen=True)
class ReportCard:
    cluster: Cluster
    chart: str


def build_report(index: PromptIndex, out_dir: Path, *, top: int = 25, reveal: Reveal | None = None) -> Path:
    """Write out_dir/index.html (mode 600) for the last dedup run; returns its path."""
    store = ClusterStore(index.path / STORE)
    try:
        run = store.last_run()
        current = store.clusters()
    finally:
        store.close()
    if run is None:
        raise ValueError(f"no dedup run in {index.path}; run 'promptsim dedup --index {index.path} --out FILE' first")
    flagged = [c for c in current if c.cluster.flagged][:top]
    shown = (reveal or list)([c.cluster for c in flagged])
    cards = [
        ReportCard(cluster, stacked_days_svg({"prompts": list(index.store.timestamps_of(c.rows).values())}))
        for cluster, c in zip(shown, flagged)
    ]
    page = _render(run, cards, total=len(current), flagged=sum(c.cluster.flagged for c in current))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    write_private(path, page.encode("utf-8"))
    return path


def _render(run: dict[str, Any], cards: list[ReportCard], *, total: int, flagged: int) -> str:
    env = Environment(loader=PackageLoader("indexer", "templates_html"), autoescape=select_autoescape(["html"]))
    return env.get_template("report.html").render(
        run=run,
        cards=cards,
        total=total,
        flagged=flagged,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )

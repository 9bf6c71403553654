"""The analyst's morning report: top campaigns as one self-contained HTML page with inline SVG charts."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from search.index import PromptIndex
from search.manifest import STORE

from .cluster_store import ClusterStore

DAY = 86_400


def volume_svg(timestamps: list[float], *, width: int = 560, height: int = 120) -> str:
    """Bars of prompts per UTC day, as an inline SVG string (no scripts, no external assets)."""
    if not timestamps:
        return ""
    days = (np.asarray(timestamps) // DAY).astype(np.int64)
    first, last = int(days.min()), int(days.max())
    counts = np.bincount(days - first, minlength=last - first + 1)
    peak = int(counts.max())
    bar = width / len(counts)
    bars = "".join(
        f'<rect x="{i * bar + 1:.1f}" y="{height - 20 - (c / peak) * (height - 30):.1f}" width="{max(bar - 2, 1):.1f}" '
        f'height="{(c / peak) * (height - 30):.1f}" fill="#c0392b"><title>{_day(first + i)}: {c}</title></rect>'
        for i, c in enumerate(counts.tolist())
    )
    labels = (
        f'<text x="0" y="{height - 4}" font-size="11">{_day(first)}</text>'
        f'<text x="{width}" y="{height - 4}" font-size="11" text-anchor="end">{_day(last)}</text>'
        f'<text x="0" y="10" font-size="11">peak {peak}/day</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="prompts per day">{bars}{labels}</svg>'
    )


def _day(day: int) -> str:
    return html.escape(dt.datetime.fromtimestamp(day * DAY, tz=dt.UTC).strftime("%Y-%m-%d"))


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
        cards.append({**c, "chart": volume_svg(list(times.values()))})
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

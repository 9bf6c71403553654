"""Small inline-SVG charts (no scripts, no external assets): prompts per UTC day, stacked by series."""

from __future__ import annotations

import datetime as dt
import html

import numpy as np

DAY = 86_400
PALETTE = ("#c0392b", "#2471a3", "#229954", "#b7950b", "#7d3c98", "#ca6f1e", "#566573")


def day_label(day: int) -> str:
    return dt.datetime.fromtimestamp(day * DAY, tz=dt.UTC).strftime("%Y-%m-%d")


def stacked_days_svg(series: dict[str, list[float]], *, width: int = 640, height: int = 140, title: str = "") -> str:
    """Bars of prompts per day, one colour per series (e.g. per cluster), with a legend."""
    every = [t for ts in series.values() for t in ts]
    if not every:
        return ""
    first, last = int(min(every) // DAY), int(max(every) // DAY)
    n_days = last - first + 1
    counts = {
        name: np.bincount((np.asarray(ts) // DAY).astype(np.int64) - first, minlength=n_days)
        for name, ts in series.items()
        if ts
    }
    totals = np.sum(list(counts.values()), axis=0)
    peak = max(int(totals.max()), 1)
    plot_h, bar_w = height - 34, width / n_days
    parts = []
    base = np.zeros(n_days)
    for k, (name, c) in enumerate(counts.items()):
        colour = PALETTE[k % len(PALETTE)]
        for i, v in enumerate(c.tolist()):
            if not v:
                continue
            h = v / peak * plot_h
            y = 12 + plot_h - (base[i] / peak * plot_h) - h
            parts.append(
                f'<rect x="{i * bar_w + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{html.escape(name)} · {day_label(first + i)}: {v}</title></rect>'
            )
        base += c
    legend = "".join(
        f'<text x="{8 + 150 * k}" y="{height - 2}" font-size="11" fill="{PALETTE[k % len(PALETTE)]}">■ '
        f"{html.escape(name[:22])}</text>"
        for k, name in enumerate(list(counts)[:4])
    )
    axis = (
        f'<text x="0" y="10" font-size="11">{html.escape(title)} peak {peak}/day</text>'
        f'<text x="0" y="{height - 16}" font-size="11">{day_label(first)}</text>'
        f'<text x="{width}" y="{height - 16}" font-size="11" text-anchor="end">{day_label(last)}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="prompts per day">{"".join(parts)}{axis}{legend}</svg>'
    )

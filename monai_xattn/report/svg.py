"""Training curves as inline SVG: no plotting library needed, and the HTML report stays one file plus PNGs."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

__all__ = ["line_chart"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")


def line_chart(
    series: Mapping[str, Sequence[float]], title: str, width: int = 320, height: int = 180, x_label: str = "epoch"
) -> str:
    """An SVG line chart of each series against its 1-based index.

    Args:
        series: name -> values (non-finite values are left out).
        title: shown above the plot.

    Returns:
        the ``<svg>`` element as a string (empty when no series has a finite value).
    """
    finite = {k: [(i + 1, v) for i, v in enumerate(vs) if math.isfinite(v)] for k, vs in series.items()}
    finite = {k: pts for k, pts in finite.items() if pts}
    if not finite:
        return ""
    xs = [x for pts in finite.values() for x, _ in pts]
    ys = [y for pts in finite.values() for _, y in pts]
    x0, x1 = 1, max(max(xs), 2)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    left, right, top, bottom = 44, 8, 22, 30
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart">',
        f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{html.escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    for value in (y0, y1):
        parts.append(
            f'<text x="{left - 4}" y="{sy(value) + 4:.1f}" text-anchor="end" font-size="10">{value:.3g}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="10">{x_label} 1-{x1}</text>'
    )
    for k, (name, pts) in enumerate(finite.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{path}"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2" fill="{colour}"/>' for x, y in pts]
        parts.append(
            f'<text x="{left + 6}" y="{top + 12 + 12 * k}" font-size="10" fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

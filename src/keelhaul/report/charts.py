"""Inline SVG line charts for the HTML report: no JavaScript, no external anything.

A chart is a string of SVG with a ``viewBox``, so it scales with the page; colours of the
axes and grid come from CSS classes (the page's light/dark palette), series colours from
the caller. Every label is escaped here; callers pass plain text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["PALETTE", "Series", "format_clock", "line_chart", "nice_ticks"]

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#7f7f7f",
    "#1f77b4",
    "#8c564b",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#d62728",
)


@dataclass(frozen=True, slots=True)
class Series:
    """``points``: (x seconds, y or None), in x order; None breaks the line."""

    label: str
    color: str
    points: Sequence[tuple[float, float | None]]
    dash: str | None = None
    width: float = 1.6


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 x 10^n) up to at least ``high``."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < high - 1e-12 * high:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def format_clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) from the run's start."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _x_ticks(x_max: float) -> list[float]:
    for step in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if x_max / step <= 8:
            break
    return [float(t) for t in range(0, int(x_max) + 1, step)]


def _path(
    points: Sequence[tuple[float, float | None]],
    sx: Callable[[float], float],
    sy: Callable[[float], float],
) -> str:
    """Segments between gaps; a lone point becomes a dot (a tiny segment, round caps)."""
    parts: list[str] = []
    run = 0
    for x, y in points:
        if y is None:
            if run == 1:
                parts.append("h0.1")
            run = 0
            continue
        parts.append(f"{'L' if run else 'M'}{sx(x):.1f} {sy(y):.1f}")
        run += 1
    if run == 1:
        parts.append("h0.1")
    return " ".join(parts)


def _stack(series: Sequence[Series]) -> list[list[tuple[float, float, float]]]:
    """Per series, (x, lower, upper) with each series on top of the previous ones."""
    base: dict[float, float] = {}
    bands: list[list[tuple[float, float, float]]] = []
    for s in series:
        band = []
        for x, y in s.points:
            lower = base.get(x, 0.0)
            upper = lower + (y or 0.0)
            base[x] = upper
            band.append((x, lower, upper))
        bands.append(band)
    return bands


def line_chart(
    series: Sequence[Series],
    *,
    chart_id: str,
    title: str,
    x_max: float,
    y_format: Callable[[float], str],
    stacked: bool = False,
    overlay: Sequence[Series] = (),
    width: int = 760,
    height: int = 260,
    empty_note: str = "no data",
) -> str:
    """An SVG chart; the x axis is seconds from the run's start (``0..x_max``).

    ``stacked``: ``series`` are filled bands on top of each other (the top edge is their
    sum; their points must share x values); ``overlay`` lines are drawn over them unstacked.
    """
    left, right, top, bottom = 64, 14, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    bands = _stack(series) if stacked else []
    lines = [*overlay] if stacked else [*series, *overlay]
    values = [y for s in lines for _, y in s.points if y is not None]
    values += [upper for band in bands for _, _, upper in band]
    y_ticks = nice_ticks(max(values, default=0.0))
    y_top = y_ticks[-1] or 1.0
    x_top = max(x_max, 1.0)

    def sx(x: float) -> float:
        return left + plot_w * x / x_top

    def sy(y: float) -> float:
        return top + plot_h * (1 - y / y_top)

    out = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in y_ticks:
        y = sy(tick)
        out.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(y_format(tick))}</text>"
        )
    for tick in _x_ticks(x_top):
        x = sx(tick)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}"/>')
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{height - 10}" text-anchor="middle">'
            f"{escape(format_clock(tick))}</text>"
        )
    out.append(
        f'<rect class="frame" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none"/>'
    )
    for s, band in zip(series if stacked else (), bands, strict=False):
        if not band or all(upper == lower for _, lower, upper in band):
            continue
        upper_edge = " ".join(f"L{sx(x):.1f} {sy(u):.1f}" for x, _, u in band)
        lower_edge = " ".join(f"L{sx(x):.1f} {sy(lo):.1f}" for x, lo, _ in reversed(band))
        d = "M" + upper_edge[1:] + " " + lower_edge + " Z"
        color = escape(s.color)
        out.append(
            f'<path class="band" d="{d}" fill="{color}" fill-opacity="0.55" stroke="{color}" '
            f'stroke-width="0.8" stroke-linejoin="round"><title>{escape(s.label)}</title></path>'
        )
    for s in lines:
        d = _path(s.points, sx, sy)
        if not d:
            continue
        dash = f' stroke-dasharray="{escape(s.dash)}"' if s.dash else ""
        out.append(
            f'<path class="series" d="{d}" fill="none" stroke="{escape(s.color)}" '
            f'stroke-width="{s.width}"{dash} stroke-linejoin="round" stroke-linecap="round">'
            f"<title>{escape(s.label)}</title></path>"
        )
    if not any(values):
        out.append(
            f'<text class="empty" x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
            f'text-anchor="middle">{escape(empty_note)}</text>'
        )
    out.append("</svg>")
    return "".join(out)

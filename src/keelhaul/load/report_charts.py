"""The charts of the HTML report, from a ``keelhaul.load/v1`` document.

Throughput, bytes/s and errors are stacked by stage (the top edge is the total); the
whole-image entries (``image pull``/``image push``) get their own lines, since their requests
are already in the stacks. Latency is one small chart per stage with p50, p95 and p99.

Runs longer than :data:`MAX_POINTS` seconds are drawn in windows of several seconds: counts
become average rates over the window, latency lines the highest per-second value in it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from keelhaul.load.stats import AGGREGATED, STAGE_ORDER
from keelhaul.report.charts import PALETTE, Series, line_chart

__all__ = ["AGG_COLOR", "MAX_POINTS", "report_charts", "stage_colors"]

MAX_POINTS = 600
AGG_COLOR = "#8a8f98"
_PCT_COLORS = {"p50": "#4e79a7", "p95": "#f28e2b", "p99": "#e15759"}


def stage_colors(stages: Sequence[str]) -> dict[str, str]:
    """Known stages keep their colour in every report; others take the unused ones."""
    colors: dict[str, str] = {}
    free = [c for i, c in enumerate(PALETTE) if i >= len(STAGE_ORDER)]
    for name in stages:
        if name in STAGE_ORDER:
            colors[name] = PALETTE[STAGE_ORDER.index(name)]
        else:
            colors[name] = free.pop(0) if free else PALETTE[len(colors) % len(PALETTE)]
    colors[AGGREGATED] = AGG_COLOR
    return colors


class _Grid:
    """The timeline on a dense x axis of windows of ``step`` seconds from ``origin``."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        timeline = doc["timeline"]
        opened = doc["run"]["model"].get("timeline", [])
        seconds = [p["t"] for p in timeline["points"]] + [p["t"] for p in opened]
        start = int(doc["run"]["started_at_epoch"])
        self.origin = min([start, *seconds])
        end = max([self.origin + math.ceil(doc["run"]["duration_s"]) - 1, *seconds])
        span = end - self.origin + 1
        self.step = max(1, math.ceil(span / MAX_POINTS))
        self.windows = math.ceil(span / self.step)
        self.cells: dict[str, dict[int, dict[str, float]]] = {}
        for p in timeline["points"]:
            cell = self._cell(p["stage"], p["t"])
            cell["count"] += p["count"]
            cell["failures"] += p["failures"]
            cell["bytes"] += p["bytes"]
            for key in ("p50_ms", "p95_ms", "p99_ms"):
                cell[key] = max(cell[key], p[key])
        for p in opened:
            cell = self._cell("(open model)", p["t"])
            cell["late"] += p["late"]
            cell["dropped"] += p["dropped"]

    def _cell(self, stage: str, t: int) -> dict[str, float]:
        window = (t - self.origin) // self.step
        cells = self.cells.setdefault(stage, {})
        if window not in cells:
            cells[window] = dict.fromkeys(
                ("count", "failures", "bytes", "p50_ms", "p95_ms", "p99_ms", "late", "dropped"),
                0.0,
            )
        return cells[window]

    @property
    def x_max(self) -> float:
        return float(self.windows * self.step)

    def rate(self, stage: str, key: str) -> list[tuple[float, float | None]]:
        cells = self.cells.get(stage, {})
        return [
            (float(w * self.step), cells[w][key] / self.step if w in cells else 0.0)
            for w in range(self.windows)
        ]

    def level(self, stage: str, key: str) -> list[tuple[float, float | None]]:
        cells = self.cells.get(stage, {})
        return [
            (float(w * self.step), cells[w][key] if w in cells else None)
            for w in range(self.windows)
        ]

    def total(self, stage: str, key: str) -> float:
        return sum(c[key] for c in self.cells.get(stage, {}).values())


def _legend(series: Sequence[Series]) -> str:
    out = ['<ul class="legend">']
    for s in series:
        style = f"border-top-color:{s.color}" + (";border-top-style:dashed" if s.dash else "")
        out.append(f'<li><span class="line" style="{escape(style)}"></span>{escape(s.label)}</li>')
    out.append("</ul>")
    return "".join(out)


def _num_tick(value: float) -> str:
    return f"{value:g}"


def _bytes_tick(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value:g} B"


def _section(title: str, body: Sequence[str], note: str = "") -> str:
    tail = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<section><h2>{escape(title)}</h2>{''.join(body)}{tail}</section>"


def report_charts(doc: Mapping[str, Any], stages: Sequence[str], colors: Mapping[str, str]) -> str:
    grid = _Grid(doc)
    composite = set(doc["composite_stages"])
    requests = [s for s in stages if s not in composite]
    wholes = [s for s in stages if s in composite]
    window = "per second" if grid.step == 1 else f"averaged over {grid.step}-s windows"
    x_max = grid.x_max
    out: list[str] = []

    thr = [Series(s, colors[s], grid.rate(s, "count")) for s in requests]
    chart = line_chart(
        thr,
        chart_id="chart-throughput",
        stacked=True,
        x_max=x_max,
        title="Requests per second, stacked by stage",
        y_format=_num_tick,
    )
    out.append(
        _section(
            "Throughput (requests/s)",
            [chart, _legend(thr)],
            f"Requests completed {window}, stacked by stage: the top edge is all "
            "requests. Time from the start of the run.",
        )
    )
    if wholes:
        its = [Series(s, colors[s], grid.rate(s, "count"), width=2.0) for s in wholes]
        chart = line_chart(
            its,
            chart_id="chart-iterations",
            x_max=x_max,
            height=200,
            title="Whole-image iterations per second",
            y_format=_num_tick,
        )
        out.append(
            _section(
                "Whole images (iterations/s)",
                [chart, _legend(its)],
                f"Completed image pulls and pushes {window}.",
            )
        )

    body = [_legend([Series(k, c, ()) for k, c in _PCT_COLORS.items()]), '<div class="grid2">']
    for stage in [*stages, AGGREGATED]:
        series = [
            Series(f"{stage} {k}", c, grid.level(stage, f"{k}_ms")) for k, c in _PCT_COLORS.items()
        ]
        slug = "".join(ch if ch.isalnum() else "-" for ch in stage.lower())
        body.append(
            f'<div><h3><span class="sw" style="background:{escape(colors[stage])}">'
            f"</span>{escape(stage)}</h3>"
        )
        body.append(
            line_chart(
                series,
                chart_id=f"chart-latency-{slug}",
                x_max=x_max,
                title=f"{stage}: p50, p95, p99 latency in ms",
                y_format=_num_tick,
                width=420,
                height=190,
            )
        )
        body.append("</div>")
    body.append("</div>")
    detail = (
        "exact per-second percentiles"
        if grid.step == 1
        else (f"the highest per-second percentile in each {grid.step}-s window")
    )
    out.append(
        _section(
            "Latency over time (ms)",
            body,
            f"Lines show {detail}; gaps are seconds without requests.",
        )
    )

    moving = [s for s in requests if grid.total(s, "bytes") > 0]
    bps = [Series(s, colors[s], grid.rate(s, "bytes")) for s in moving]
    chart = line_chart(
        bps,
        chart_id="chart-bytes",
        stacked=True,
        x_max=x_max,
        title="Body bytes per second, stacked by stage",
        y_format=_bytes_tick,
        empty_note="no bytes transferred",
    )
    out.append(
        _section(
            "Bytes/s",
            [chart, _legend(bps)],
            f"Request and response body bytes {window}, stacked by stage.",
        )
    )

    failing = [s for s in requests if grid.total(s, "failures") > 0]
    errs = [Series(f"{s}", colors[s], grid.rate(s, "failures")) for s in failing]
    lines = [
        Series(f"{s} failures", colors[s], grid.rate(s, "failures"), "6 3", 2.0)
        for s in wholes
        if grid.total(s, "failures") > 0
    ]
    if "(open model)" in grid.cells:
        lines.append(Series("late starts", "#b07aa1", grid.rate("(open model)", "late"), "5 3"))
        lines.append(Series("dropped", "#d62728", grid.rate("(open model)", "dropped"), "2 3"))
    chart = line_chart(
        errs,
        chart_id="chart-errors",
        stacked=True,
        overlay=lines,
        x_max=x_max,
        title="Failed requests per second, stacked by stage",
        y_format=_num_tick,
        empty_note="no failures",
    )
    out.append(
        _section(
            "Errors over time",
            [chart, _legend([*errs, *lines])],
            f"Failed requests {window}, stacked by stage; dashed: whole images "
            "and open-model pacing.",
        )
    )
    return "".join(out)

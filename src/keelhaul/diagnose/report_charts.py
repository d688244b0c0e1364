"""The diagnosis report's time-series charts, drawn with the load kit's chart helper.

One chart per question an SRE asks of the run: who used the CPUs, who waited for one,
what the proxy served and how fast, where connections queued, whether the token service's
slots were full, what the registry held in flight, how busy Redis was, what nginx dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from keelhaul.diagnose.targets import TIER_LABELS
from keelhaul.report.charts import PALETTE, Series, line_chart
from keelhaul.report.page import swatch

__all__ = ["TIER_COLORS", "charts_section"]

TIER_COLORS = {
    "generator": "#9c755f",
    "nginx": "#4e79a7",
    "auth": "#f28e2b",
    "registry": "#59a14f",
    "storage": "#76b7b2",
    "redis": "#e15759",
    "diagnosis": "#b07aa1",
    "other": "#bab0ac",
}


Points = list[tuple[float, float | None]]


def _line(series: Mapping[str, list[float | None]], key: str) -> Points:
    xs = series["t"]
    ys = series.get(key) or [None] * len(xs)
    return [(float(x) if x is not None else 0.0, y) for x, y in zip(xs, ys, strict=True)]


def _scaled(points: Points, factor: float) -> Points:
    return [(x, y * factor if y is not None else None) for x, y in points]


def _chart_specs(s: Mapping[str, list[float | None]]) -> list[tuple[str, str, list[Series], bool]]:
    tiers = ["generator", "nginx", "auth", "registry", "redis", "diagnosis", "other"]

    def by_tier(prefix: str, names: Sequence[str]) -> list[Series]:
        return [
            Series(TIER_LABELS.get(t, t), TIER_COLORS[t], _line(s, f"{prefix}.{t}"))
            for t in names
            if f"{prefix}.{t}" in s
        ]

    stages = [k.split(".", 1)[1] for k in s if k.startswith("rps.")]
    colors = {st: PALETTE[i % len(PALETTE)] for i, st in enumerate(stages)}
    rps = [Series(st, colors[st], _line(s, f"rps.{st}")) for st in stages]
    if "client.rps" in s:
        rps.append(Series("client requests/s", "#000000", _line(s, "client.rps"), dash="4 3"))
    latency = [Series(st, colors[st], _line(s, f"latency_ms.{st}")) for st in stages]
    queues = [
        Series(TIER_LABELS.get(c, c), TIER_COLORS[c], _line(s, f"queue.{c}"))
        for c in ("nginx", "auth", "registry", "redis")
    ]
    token = [
        Series("in flight", TIER_COLORS["auth"], _line(s, "auth.inflight")),
        Series("queued (accept queue)", "#cf222e", _line(s, "queue.auth"), dash="4 3"),
    ]
    capacity = [c for c in s.get("auth.capacity") or [] if c is not None]
    if capacity and max(capacity) <= 64:
        token.append(Series("capacity", "#7f7f7f", _line(s, "auth.capacity"), dash="2 2"))
    redis = [
        Series("busy %", TIER_COLORS["redis"], _scaled(_line(s, "redis.busy"), 100)),
        Series("PING ms", "#4e79a7", _line(s, "redis.ping_ms"), dash="4 3"),
    ]
    nginx = [
        Series("active", TIER_COLORS["nginx"], _line(s, "nginx.active")),
        Series("dropped/s", "#cf222e", _line(s, "nginx.dropped_per_s"), dash="4 3"),
    ]
    registry = [Series("in flight", TIER_COLORS["registry"], _line(s, "registry.inflight"))]
    return [
        ("chart-cpu", "CPU by tier (CPUs)", by_tier("cpu", tiers), True),
        (
            "chart-runq",
            "Waiting for a CPU, by tier (CPUs' worth)",
            by_tier("runq", tiers[:-1]),
            False,
        ),
        ("chart-rps", "Requests per second at the proxy, by stage", rps, False),
        ("chart-latency", "Mean request time at the proxy, by stage (ms)", latency, False),
        ("chart-queues", "Accept queues (connections waiting)", queues, False),
        ("chart-token", "Token service: requests in flight and queued", token, False),
        ("chart-registry", "Registry: requests in flight", registry, False),
        ("chart-redis", "Redis: busy (%) and PING (ms)", redis, False),
        ("chart-nginx", "nginx: active connections, dropped per second", nginx, False),
    ]


def _tick(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


def charts_section(s: Mapping[str, list[float | None]]) -> str:
    times = [t for t in s.get("t") or () if t is not None]
    if not times:
        return ""
    x_max = max(times)
    out = ['<section id="series"><h2>Per-tier time series</h2><div class="grid2">']
    for chart_id, title, series, stacked in _chart_specs(s):
        legend = "".join(f"<li>{swatch(x.color)}{escape(x.label)}</li>" for x in series)
        chart = line_chart(
            series,
            chart_id=chart_id,
            title=title,
            x_max=x_max,
            y_format=_tick,
            stacked=stacked,
            empty_note="zero throughout",
        )
        out.append(f'<div><h3>{escape(title)}</h3>{chart}<ul class="legend">{legend}</ul></div>')
    out.append("</div></section>")
    return "".join(out)

"""The ``keelhaul.diagnose/v1`` JSON document: everything the HTML report shows, as data.

``series`` holds one value per sampled second (``t``: seconds from the first sample,
``epoch``: the sample's wall-clock second) for every tier; ``window`` marks the seconds
with traffic the verdict was made from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from keelhaul import __version__
from keelhaul.diagnose.analysis import Report
from keelhaul.diagnose.model import Tick
from keelhaul.diagnose.series import gauge_series, intervals, rate_series, sum_rate_series
from keelhaul.diagnose.signals import TIERS
from keelhaul.diagnose.sources import resolution_cap
from keelhaul.report.jsondoc import clean, dumps, iso

__all__ = ["SCHEMA", "build_document", "dumps", "time_series"]

SCHEMA = "keelhaul.diagnose/v1"
MAX_STAGES = 6


def _values(points: Sequence[tuple[float, float | None]]) -> list[float | None]:
    return [v for _, v in points]


def _stages(ticks: Sequence[Tick]) -> list[str]:
    counts: dict[str, float] = {}
    last = next((t.reading("nginx_log") for t in reversed(ticks) if t.reading("nginx_log")), None)
    if last is not None:
        for key, value in last.counters.items():
            if key.startswith("n."):
                counts[key[2:]] = value
    return sorted(counts, key=lambda s: -counts[s])[:MAX_STAGES]


def time_series(ticks: Sequence[Tick]) -> dict[str, list[float | None]]:
    """Per interval: CPU and run-queue per tier, traffic and latency per stage, queues,
    the token service's slots, the registry's in-flight requests, Redis, nginx."""
    pairs = intervals(ticks)
    if not pairs:
        return {"t": [], "epoch": []}
    t0 = ticks[0].t
    out: dict[str, list[float | None]] = {
        "t": [b.t - t0 for _, b in pairs],
        "epoch": [float(math.floor(b.t)) for _, b in pairs],
    }
    for tier in TIERS:
        out[f"cpu.{tier}"] = _values(rate_series(ticks, "procs", f"cpu.{tier}"))
        out[f"runq.{tier}"] = _values(rate_series(ticks, "procs", f"runq.{tier}"))
    busy = _values(rate_series(ticks, "procs", "host.busy"))
    ours = [
        sum(v for tier in TIERS if (v := out[f"cpu.{tier}"][i]) is not None)
        for i in range(len(pairs))
    ]
    out["cpu.other"] = [
        max(0.0, b - o) if b is not None else None for b, o in zip(busy, ours, strict=True)
    ]
    for stage in _stages(ticks):
        n = _values(rate_series(ticks, "nginx_log", f"n.{stage}"))
        rt = _values(rate_series(ticks, "nginx_log", f"rt.{stage}"))
        out[f"rps.{stage}"] = n
        out[f"latency_ms.{stage}"] = [
            1000 * r / c if c and r is not None else None for c, r in zip(n, rt, strict=True)
        ]
    out["errors_per_s"] = _values(
        sum_rate_series(ticks, "nginx_log", lambda k: k.startswith("err."))
    )
    for component in ("nginx", "auth", "registry", "redis"):
        out[f"queue.{component}"] = _values(gauge_series(ticks, "listen", f"queue.{component}"))
    for key in ("inflight", "capacity", "workers"):
        out[f"auth.{key}"] = _values(gauge_series(ticks, "auth", key))
    out["registry.inflight"] = _values(gauge_series(ticks, "registry", "inflight"))
    redis_busy = _values(rate_series(ticks, "redis", "busy_usec"))
    out["redis.busy"] = [b / 1e6 if b is not None else None for b in redis_busy]
    out["redis.ping_ms"] = _values(gauge_series(ticks, "redis", "ping_ms"))
    out["nginx.active"] = _values(gauge_series(ticks, "stub_status", "active"))
    out["nginx.dropped_per_s"] = _values(rate_series(ticks, "stub_status", "dropped"))
    return out


def _client_series(report: Report, epochs: Sequence[float | None]) -> dict[str, list[float | None]]:
    if report.client is None or not report.client.per_second:
        return {}
    per = report.client.per_second
    # the client's second [s, s+1) ends at the sample taken at s+1
    return {
        "client.rps": [
            float(per[int(e) - 1][0]) if e is not None and int(e) - 1 in per else None
            for e in epochs
        ],
        "client.failures": [
            float(per[int(e) - 1][1]) if e is not None and int(e) - 1 in per else None
            for e in epochs
        ],
    }


def build_document(report: Report) -> dict[str, Any]:
    s, v = report.signals, report.verdict
    ticks = report.collection.ticks
    series = time_series(ticks)
    series.update(_client_series(report, series["epoch"]))
    t0 = ticks[0].t if ticks else 0.0
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "keelhaul_version": __version__,
        "generated_at": iso(ticks[-1].t) if ticks else None,
        "watched": dict(report.meta),
        "source": {
            **s.source.as_dict(),
            "max_confidence": resolution_cap(s.source.resolution_s, s.steps),
        },
        "window": {
            "start": iso(s.start) if s.start else None,
            "end": iso(s.end) if s.end else None,
            "start_s": s.start - t0 if ticks else 0.0,
            "end_s": s.end - t0 if ticks else 0.0,
            "seconds": s.seconds,
            "samples": len(ticks),
        },
        "verdict": v.as_dict(),
        "waterfalls": [w.as_dict() for w in report.waterfalls],
        "signals": {
            "cores": s.cores,
            "host_busy": s.host_busy,
            "other_cores": s.other_cores,
            "tiers": {name: t.as_dict() for name, t in s.tiers.items()},
            "proxy": s.proxy.as_dict() if s.proxy else None,
            "token_service": s.auth.as_dict() if s.auth else None,
            "registry": s.registry.as_dict() if s.registry else None,
            "redis": s.redis.as_dict() if s.redis else None,
            "client": [asdict(c) for c in s.client],
            "collector_errors": dict(s.errors),
        },
        "evidence_log": list(s.notes),
        "series": series,
        "profile": None,
    }
    if report.profile is not None:
        p = report.profile
        doc["profile"] = {
            "summary": dict(p.summary),
            "hotspot": asdict(p.hot) if p.hot else None,
            "note": p.note,
            "dot": p.dot,
            "svg": p.svg,
        }
    return clean(doc)  # type: ignore[no-any-return]

"""The ``--json`` report: one versioned document (``keelhaul.load/v1``) per run.

The schema is ``docs/load-report.schema.json`` and is explained field by field in
``docs/load-report.md``. The document is also what :mod:`keelhaul.load.report_html` renders,
so an HTML report can be made again from a saved JSON file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from keelhaul import __version__
from keelhaul.load import histogram as hdr
from keelhaul.load.checks import CheckResult
from keelhaul.load.stats import AGGREGATED, RunStats, StageSummary
from keelhaul.report.jsondoc import dumps, iso, num

__all__ = ["SCHEMA", "ClosedModel", "OpenModel", "RunInfo", "build_report", "dumps"]

SCHEMA = "keelhaul.load/v1"


@dataclass(frozen=True, slots=True)
class ClosedModel:
    """``users`` users, each starting its next iteration when the last one ends."""

    users: int
    spawn_rate: float
    kind: Literal["closed"] = "closed"


@dataclass(frozen=True, slots=True)
class OpenModel:
    """Iterations start at ``rate`` per second whatever the latency (``--rate N/s``);
    ``late_after_ms`` is the pacer's tolerance before a start counts as late."""

    rate: float
    late_after_ms: float | None = None
    kind: Literal["open"] = "open"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the caller knows about the run; the statistics supply the rest.

    ``started_at`` is epoch seconds; ``processes`` counts load-generating processes in all
    (1 for a plain local run); ``scenario`` maps each flow or user class to its weight.
    """

    target: str
    started_at: float
    duration_s: float
    model: ClosedModel | OpenModel
    processes: int = 1
    hosts: int = 1
    mode: Literal["local", "processes", "distributed"] = "local"
    scenario: Mapping[str, float] = field(default_factory=dict)
    keelhaul_version: str = __version__
    locust_version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def _iso(epoch: float) -> str:
    return iso(epoch, "milliseconds")


def _row(row: StageSummary) -> dict[str, Any]:
    return {
        "stage": row.name,
        "count": row.count,
        "failures": row.failures,
        "fail_ratio": num(row.fail_ratio),
        "rps": num(row.rps),
        "p50_ms": num(row.p50_ms),
        "p90_ms": num(row.p90_ms),
        "p95_ms": num(row.p95_ms),
        "p99_ms": num(row.p99_ms),
        "p999_ms": num(row.p999_ms),
        "min_ms": num(row.min_ms),
        "max_ms": num(row.max_ms),
        "mean_ms": num(row.mean_ms),
        "bytes": row.bytes,
        "bytes_per_s": num(row.bytes_per_s),
    }


def _model(info: RunInfo, stats: RunStats) -> dict[str, Any]:
    model = info.model
    if isinstance(model, ClosedModel):
        return {"kind": "closed", "users": model.users, "spawn_rate": model.spawn_rate}
    it = stats.iterations()
    return {
        "kind": "open",
        "rate": model.rate,
        "late_after_ms": model.late_after_ms,
        "scheduled": it.scheduled,
        "late": it.late,
        "dropped": it.dropped,
        "max_lag_ms": num(it.max_lag_ms),
        "mean_lag_ms": num(it.mean_lag_ms),
        "timeline": [{"t": t, "late": late, "dropped": d} for t, late, d in it.per_second],
    }


def _check(result: CheckResult) -> dict[str, Any]:
    check = result.check
    return {
        "spec": check.spec,
        "stage": check.stage,
        "metric": check.metric,
        "op": check.op,
        "threshold": num(check.threshold),
        "actual": num(result.actual),
        "passed": result.passed,
        "reason": result.reason,
    }


def build_report(
    stats: RunStats,
    info: RunInfo,
    results: Sequence[CheckResult] = (),
    *,
    include_histograms: bool = True,
) -> dict[str, Any]:
    """The whole ``keelhaul.load/v1`` document (plain data, ready for :func:`dumps`)."""
    rows = stats.summary(info.duration_s)
    span = stats.span()
    stages = [r for r in rows if r.name != AGGREGATED]
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "run": {
            "target": info.target,
            "started_at": _iso(info.started_at),
            "ended_at": _iso(info.started_at + info.duration_s),
            "started_at_epoch": num(info.started_at),
            "duration_s": num(info.duration_s),
            "mode": info.mode,
            "processes": info.processes,
            "hosts": info.hosts,
            "model": _model(info, stats),
            "scenario": {name: num(weight) for name, weight in info.scenario.items()},
            "keelhaul_version": info.keelhaul_version,
            "locust_version": info.locust_version,
            "labels": dict(info.labels),
        },
        "histogram": {
            "unit": "us",
            "lowest": hdr.LOWEST_US,
            "highest": hdr.HIGHEST_US,
            "significant_digits": hdr.SIGNIFICANT_DIGITS,
        },
        "integrity": {
            "lost_deltas": stats.lost_deltas,
            "duplicate_deltas": stats.duplicate_deltas,
            "clamped": stats.clamped,
        },
        "stages": [_row(r) for r in stages],
        "aggregated": _row(rows[-1]),
        "composite_stages": sorted(stats.composite),
        "checks": [_check(r) for r in results],
        "passed": all(r.passed for r in results),
        "errors": [
            {"stage": e.stage, "message": e.message, "count": e.count} for e in stats.errors()
        ],
        "timeline": {
            "step_s": 1,
            "first": span[0] if span else None,
            "last": span[1] if span else None,
            "points": [
                {
                    "t": p.t,
                    "stage": p.stage,
                    "count": p.count,
                    "failures": p.failures,
                    "bytes": p.bytes,
                    "p50_ms": num(p.p50_ms),
                    "p95_ms": num(p.p95_ms),
                    "p99_ms": num(p.p99_ms),
                }
                for p in stats.timeline(1)
            ],
        },
    }
    if include_histograms:
        names = [*(r.name for r in stages), AGGREGATED]
        document["histograms"] = {name: stats.histogram(name) for name in names}
    return document

"""Per-second (or coarser) views of a run, with exact percentiles in every window.

Each (second, stage) bucket keeps its own sparse histogram, so a window of any width is the
sum of its seconds' histograms and its percentiles are as exact as the whole run's. The
``Aggregated`` series sums the request stages of each window (not the whole-image entries,
which would count their requests twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from keelhaul.load.layer import Bucket

__all__ = ["AGGREGATED", "TimelinePoint", "timeline_points"]

AGGREGATED = "Aggregated"


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One stage in one window. ``t`` is the window's first epoch second."""

    t: int
    stage: str
    count: int
    failures: int
    bytes: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def _point(t: int, stage: str, bucket: Bucket) -> TimelinePoint:
    p50, p95, p99 = bucket.percentiles((50.0, 95.0, 99.0))
    return TimelinePoint(
        t, stage, bucket.count, bucket.failures, bucket.bytes, p50 / 1000, p95 / 1000, p99 / 1000
    )


def timeline_points(
    timeline: Mapping[int, Mapping[str, Bucket]],
    *,
    composite: Iterable[str] = (),
    step_s: int = 1,
    aggregated: bool = True,
) -> list[TimelinePoint]:
    """Points sorted by ``(t, stage)``; windows without requests for a stage are absent.

    Windows are aligned to multiples of ``step_s`` epoch seconds.
    """
    if step_s < 1:
        raise ValueError("step_s must be >= 1")
    skip = frozenset(composite)
    windows: dict[int, dict[str, list[Bucket]]] = {}
    for second, row in timeline.items():
        window = windows.setdefault(second - second % step_s, {})
        for name, bucket in row.items():
            window.setdefault(name, []).append(bucket)
            if aggregated and name not in skip:
                window.setdefault(AGGREGATED, []).append(bucket)
    points: list[TimelinePoint] = []
    for start in sorted(windows):
        window = windows[start]
        for name in sorted(window):
            parts = window[name]
            if len(parts) == 1:
                points.append(_point(start, name, parts[0]))  # no copy: most points
                continue
            acc = Bucket()
            for part in parts:
                acc.add(part)
            points.append(_point(start, name, acc))
    return points

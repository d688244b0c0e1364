"""Pure helpers over ticks: per-second rates, gauges, and window differences.

A *window* is a run of consecutive ticks; counters and histograms are cumulative, so what
happened in it is ``last - first``. Intervals shorter than half a second (the sampler's
final reading right after its last regular tick) are too noisy for rates and are skipped.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from keelhaul.diagnose.model import Hist, Tick

__all__ = [
    "MIN_INTERVAL",
    "active_window",
    "gauge_series",
    "hist_delta",
    "intervals",
    "mean",
    "median",
    "rate_series",
    "share",
    "sum_rate_series",
    "window_delta",
    "window_rate",
]

MIN_INTERVAL = 0.5

Point = tuple[float, float | None]


def intervals(ticks: Sequence[Tick]) -> list[tuple[Tick, Tick]]:
    """Consecutive pairs, skipping a reading that came too soon after the previous one."""
    out: list[tuple[Tick, Tick]] = []
    prev: Tick | None = None
    for tick in ticks:
        if prev is None:
            prev = tick
            continue
        if tick.t - prev.t < MIN_INTERVAL:
            continue
        out.append((prev, tick))
        prev = tick
    return out


def _rate(a: Tick, b: Tick, collector: str, key: str) -> float | None:
    x, y = a.counter(collector, key), b.counter(collector, key)
    if x is None or y is None:
        return None
    return max(0.0, y - x) / (b.t - a.t)


def rate_series(ticks: Sequence[Tick], collector: str, key: str) -> list[Point]:
    """Per interval: (end time, counter increase per second)."""
    return [(b.t, _rate(a, b, collector, key)) for a, b in intervals(ticks)]


def sum_rate_series(
    ticks: Sequence[Tick], collector: str, match: Callable[[str], bool]
) -> list[Point]:
    """Per interval, the summed rate of every counter whose key ``match``es."""
    out: list[Point] = []
    for a, b in intervals(ticks):
        ra, rb = a.reading(collector), b.reading(collector)
        if ra is None or rb is None or ra.error or rb.error:
            out.append((b.t, None))
            continue
        dt = b.t - a.t
        total = 0.0
        for key, value in rb.counters.items():
            if match(key):
                total += max(0.0, value - ra.counters.get(key, value)) / dt
        out.append((b.t, total))
    return out


def gauge_series(ticks: Sequence[Tick], collector: str, key: str) -> list[Point]:
    """Per interval end: the gauge's value (aligned with :func:`rate_series`)."""
    return [(b.t, b.gauge(collector, key)) for _, b in intervals(ticks)]


def _last_with(ticks: Sequence[Tick], get: Callable[[Tick], object]) -> Tick | None:
    for tick in reversed(ticks):
        if get(tick) is not None:
            return tick
    return None


def _first_with(ticks: Sequence[Tick], get: Callable[[Tick], object]) -> Tick | None:
    for tick in ticks:
        if get(tick) is not None:
            return tick
    return None


def window_delta(ticks: Sequence[Tick], collector: str, key: str) -> float | None:
    """Counter increase over the window (first and last readings that have it)."""

    def get(t: Tick) -> float | None:
        return t.counter(collector, key)

    first, last = _first_with(ticks, get), _last_with(ticks, get)
    if first is None or last is None or first is last:
        return None
    a, b = get(first), get(last)
    assert a is not None and b is not None
    return max(0.0, b - a)


def window_rate(ticks: Sequence[Tick], collector: str, key: str) -> float | None:
    """Mean rate over the window: the increase divided by the time between its readings."""

    def get(t: Tick) -> float | None:
        return t.counter(collector, key)

    first, last = _first_with(ticks, get), _last_with(ticks, get)
    if first is None or last is None or last.t - first.t < MIN_INTERVAL:
        return None
    a, b = get(first), get(last)
    assert a is not None and b is not None
    return max(0.0, b - a) / (last.t - first.t)


def hist_delta(ticks: Sequence[Tick], collector: str, key: str) -> Hist | None:
    """The histogram of what was observed during the window (None: nothing, or no base)."""

    def ok(t: Tick) -> bool:
        r = t.reading(collector)
        return r is not None and r.error is None

    readable = [t for t in ticks if ok(t)]
    if len(readable) < 2:
        return None
    newest = readable[-1].hist(collector, key)
    if newest is None:
        return None
    # a key missing from the first good reading appeared later: all of it is in the window
    delta = newest.minus(readable[0].hist(collector, key))
    return delta if delta.count > 0 else None


def mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def share(values: Sequence[float | None], predicate: Callable[[float], bool]) -> float | None:
    """Share of the present values for which ``predicate`` holds."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return sum(1 for v in present if predicate(v)) / len(present)


def active_window(ticks: Sequence[Tick], traffic: Sequence[Point]) -> tuple[int, int] | None:
    """Indices ``(first, last)`` into ``ticks`` of the window with traffic.

    ``traffic`` is a rate series (end time, requests/s). The window starts at the reading
    before the first interval with traffic and ends at the last one with traffic; with at
    least four busy intervals the first is dropped too (a ramp, not the steady state).
    """
    busy = [t for t, v in traffic if v]
    if not busy:
        return None
    index = {tick.t: i for i, tick in enumerate(ticks)}
    ends = [index[t] for t in busy if t in index]
    if not ends:
        return None
    first_end, last_end = ends[0], ends[-1]
    start = max(0, first_end - 1)
    if len(ends) >= 4:
        start = first_end
    return start, last_end

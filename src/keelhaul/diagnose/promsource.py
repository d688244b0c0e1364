"""The Prometheus source: a window of a (possibly remote) stack's series → a Collection.

::

    with PromApi(url) as api:
        collection = collect(api, tier_map, start, end, local=generator_ticks)
    report = analyse(collection, client=...)          # the same engine as the local source

Steps: find the scrape resolution from the raw samples' spacing (the tiers' CPU series
and ``up``); refuse a window shorter than two scrapes; ask one ``query_range`` per tier and
kind with ``step`` = the resolution; translate (:mod:`.promseries`). The load generator,
when it runs here, is sampled locally (it is not the stack) and merged in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from keelhaul.diagnose.model import Collection, Tick
from keelhaul.diagnose.promapi import PromApi
from keelhaul.diagnose.promseries import (
    CADVISOR,
    PROCESS_EXPORTER,
    SCRAPE,
    Query,
    build_collection,
    merge_local,
    queries,
    spacing,
)
from keelhaul.diagnose.sources import SourceInfo
from keelhaul.diagnose.targets import available_cores
from keelhaul.diagnose.tiermap import TierMap
from keelhaul.errors import DiagnoseError

__all__ = ["LOCAL_TIERS", "LOOKBACK", "collect", "query_step", "resolution", "settle_seconds"]

LOCAL_TIERS = ("generator", "diagnosis")
"""Sampled on this machine even with Prometheus: the load generator and the diagnosis."""
MAX_SETTLE = 60.0
LOOKBACK = 300.0
"""Seconds before a window's end in which the scrape resolution is measured."""
FLOOR_LOOKBACK = 300.0
"""Seconds before the window in which the fastest scrape of each tier is looked for."""


def _probes(tiers: TierMap, seconds: int) -> list[str]:
    """Cheap raw range vectors whose spacing is the scrape interval of each tier's targets."""
    cpu = CADVISOR[0] if tiers.cpu_source == "cadvisor" else PROCESS_EXPORTER[1]
    out = []
    for sel in tiers.tiers.values():
        if sel.cpu:
            out.append(f"{cpu}{{{sel.cpu}}}[{seconds}s]")
        if sel.metrics:
            out.append(f"up{{{sel.metrics}}}[{seconds}s]")
    return out


def resolution(api: PromApi, tiers: TierMap, start: float, end: float) -> float:
    """The coarsest scrape interval among the tiers' series in the window (seconds)."""
    seconds = max(1, math.ceil(end - start))
    found = []
    for probe in _probes(tiers, seconds):
        _kind, result = api.query(probe, end)
        if (gap := spacing(_as_matrix(result))) is not None:
            found.append(gap)
    if not found:
        _kind, result = api.query(f"up[{seconds}s]", end)
        gap = spacing(_as_matrix(result))
        if gap is None:
            raise DiagnoseError(
                f"Prometheus at {api.base} has no samples between {start:.0f} and {end:.0f} "
                "for any tier (nothing scraped in that window?)"
            )
        found.append(gap)
    return max(found)


def _as_matrix(result: list[Any]) -> list[dict[str, Any]]:
    return [r for r in result if isinstance(r, dict) and isinstance(r.get("values"), list)]


def query_step(resolution_s: float) -> float:
    """A step Prometheus evaluates exactly: whole seconds from 1 s up, else tenths."""
    if resolution_s >= 1:
        return float(max(1, round(resolution_s)))
    return max(0.1, round(resolution_s, 1))


def settle_seconds(resolution_s: float) -> float:
    """How long after a run's end its last scrape is surely in (one interval and a half)."""
    return min(MAX_SETTLE, 1.5 * resolution_s)


def collect(
    api: PromApi,
    tiers: TierMap,
    start: float,
    end: float,
    *,
    local: Sequence[Tick] = (),
    resolution_s: float | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> Collection:
    """Every tier's series over ``[start, end]`` as a collection (DiagnoseError: why not)."""
    if end <= start:
        raise DiagnoseError(f"the window ends ({end:.0f}) before it starts ({start:.0f})")
    if resolution_s is None:  # the scrape interval is the server's: look wider than the window
        resolution_s = resolution(api, tiers, min(start, end - LOOKBACK), end)
    step = query_step(resolution_s)
    if end - start < 2 * step:
        raise DiagnoseError(
            f"a window of {end - start:.0f} s is shorter than two scrapes "
            f"(Prometheus has a sample every {step:g} s): watch at least {2 * step:.0f} s"
        )
    say(f"reading {end - start:.0f} s from Prometheus at {api.base} (a sample every {step:g} s)")
    first = math.ceil(start / step) * step
    count = int((end - first) // step) + 1
    times = [round(first + i * step, 3) for i in range(count)]
    results: dict[Query, list[dict[str, Any]]] = {}
    for query in queries(tiers):
        results[query] = _as_matrix(api.query_range(query.promql, times[0], times[-1], step))
    # the steps as Prometheus evaluated them (it keeps milliseconds, not our floats)
    answered = sorted(
        {round(float(v[0]), 3) for m in results.values() for x in m for v in x["values"]}
    )
    times = answered or times
    if not any(m for q, m in results.items() if q.kind != "host"):
        raise DiagnoseError(
            f"Prometheus at {api.base} returned no series for any tier between "
            f"{start:.0f} and {end:.0f}; check the tier mapping (--tiers)"
        )
    notes: list[str] = []
    floors = _scrape_floors(api, tiers, start, end)
    collection, unseen = build_collection(
        results, times, cpu_source=tiers.cpu_source, meta={}, scrape_floors=floors
    )
    cores = _cores(collection)
    if cores is None:
        cores = available_cores()
        notes.append(
            f"no node-exporter series (host: {tiers.host or 'none'}): "
            f"assumed the {cores} CPUs of this machine"
        )
    source = SourceInfo(
        kind="prometheus", resolution_s=step, url=api.base, unseen=unseen, notes=tuple(notes)
    )
    meta = {
        "cores": cores,
        "source": source.as_dict(),
        "window": {"start": start, "end": end},
        "cpu_source": tiers.cpu_source,
        "queries": [q.promql for q in results],
    }
    merged = merge_local(Collection(collection.ticks, meta), local, LOCAL_TIERS)
    return merged


def _scrape_floors(api: PromApi, tiers: TierMap, start: float, end: float) -> dict[str, float]:
    """Per tier: its fastest scrape in the window and the minutes before it."""
    seconds = math.ceil(end - start + FLOOR_LOOKBACK)
    floors = {}
    for tier, sel in tiers.tiers.items():
        if not sel.metrics:
            continue
        promql = f"min(min_over_time({SCRAPE}{{{sel.metrics}}}[{seconds}s]))"
        _kind, result = api.query(promql, end)
        for row in result:
            value = row.get("value") if isinstance(row, dict) else None
            if isinstance(value, list) and len(value) == 2:
                floors[tier] = float(value[1])
    return floors


def _cores(collection: Collection) -> int | None:
    for tick in reversed(collection.ticks):
        value = tick.gauge("procs", "host.cores")
        if value:
            return int(value)
    return None

"""Pure: Prometheus range queries → the same :class:`~.model.Collection` the local collectors make.

The Prometheus source asks, per tier, for the *raw* series it needs (``query_range`` of a
plain selector, one value per step), so every step is the equivalent of one scrape of
every exporter. Each step's samples go through the same pure readers the local collectors
use (:func:`~.collectors.auth_metrics.auth_reading`,
:func:`~.collectors.registry_metrics.registry_reading`) or through the readers below, which
give the standard exporters' series the local collectors' keys:

========================  =================================================================
collector (keys)          series
========================  =================================================================
``procs``                 process-exporter ``namedprocess_namegroup_*`` or cAdvisor
(``cpu.<tier>`` ...)      ``container_cpu_*`` / ``container_spec_cpu_*``; node-exporter
                          ``node_cpu_seconds_total`` for the host
``stub_status``           prometheus-nginx-exporter ``nginx_connections_*``,
                          ``nginx_http_requests_total``
``auth``                  the token service's ``keelhaul_token_*`` (its ``/metrics``)
``registry``              the registry's ``registry_http_*``, ``registry_storage_*``
``redis``                 prometheus-redis-exporter ``redis_commands_*`` (commandstats),
                          ``redis_connected_clients``, ``redis_cpu_*``
========================  =================================================================

Not available through Prometheus, and said in every report (``SOURCES["prometheus"].blind``
in :mod:`.sources`): run-queue wait, accept queues, nginx's per-request upstream times,
log lines, Redis' PING.
A step without samples for a tier is an unreadable reading (an error), never zeros.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keelhaul.diagnose.collectors.auth_metrics import auth_reading
from keelhaul.diagnose.collectors.registry_metrics import registry_reading
from keelhaul.diagnose.model import Collection, Reading, Tick
from keelhaul.diagnose.prom import Labels, Samples
from keelhaul.diagnose.tiermap import TierMap

__all__ = [
    "Query",
    "build_collection",
    "matrix_steps",
    "merge_local",
    "nginx_reading",
    "procs_reading",
    "queries",
    "redis_reading",
    "runnable_floor",
    "spacing",
]

PROCESS_EXPORTER = (
    "namedprocess_namegroup_cpu_seconds_total",
    "namedprocess_namegroup_num_procs",
    "namedprocess_namegroup_num_threads",
    "namedprocess_namegroup_memory_bytes",
    "namedprocess_namegroup_states",
)
CADVISOR = (
    "container_cpu_usage_seconds_total",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
    "container_spec_cpu_quota",
    "container_spec_cpu_period",
    "container_memory_working_set_bytes",
)
FAMILIES: Mapping[str, str] = {
    "nginx": "nginx_(connections_.*|http_requests_total|up)",
    "auth": "keelhaul_(token|credential_cache)_.*",
    "registry": "registry_(http_request_duration_seconds_.*|http_in_flight_requests"
    "|http_requests_total|storage_action_seconds_.*|storage_cache_total)"
    "|go_goroutines|go_gc_duration_seconds_sum|process_cpu_seconds_total",
    "redis": "redis_(commands_duration_seconds_total|commands_total|commands_processed_total"
    "|connected_clients|blocked_clients|cpu_.*_seconds_total|slowlog_last_id|up)",
}
"""The metric families each tier's ``metrics`` selector is asked for."""
SCRAPE = "scrape_duration_seconds"
"""Prometheus' own series per target: how long the scrape took. A scrape of the token
service is a request like the others: it waits for a worker too (:mod:`.workerwait`)."""
UP = "up"
"""Prometheus' own series per target: 1 if the scrape succeeded, 0 if it failed or timed out.
A failed scrape leaves only these two series at its step: an unreadable reading, not zeros."""
COLLECTOR = {"nginx": "stub_status", "auth": "auth", "registry": "registry", "redis": "redis"}


@dataclass(frozen=True)
class Query:
    """One range query: ``kind`` is ``cpu``, ``metrics`` or ``host``; ``tier`` its tier."""

    kind: str
    tier: str
    promql: str


def _selector(names: str, matchers: str) -> str:
    extra = f",{matchers}" if matchers else ""
    return f'{{__name__=~"{names}"{extra}}}'


def queries(tiers: TierMap) -> list[Query]:
    """The range queries for a mapping: per tier its CPU and its metrics, plus the host."""
    cpu_names = "|".join(CADVISOR if tiers.cpu_source == "cadvisor" else PROCESS_EXPORTER)
    out = [Query("host", "host", _selector("node_cpu_seconds_total", tiers.host))]
    for tier, sel in tiers.tiers.items():
        if sel.cpu:
            out.append(Query("cpu", tier, _selector(cpu_names, sel.cpu)))
        if sel.metrics:
            names = f"{FAMILIES[tier]}|{SCRAPE}|{UP}"
            out.append(Query("metrics", tier, _selector(names, sel.metrics)))
    return out


def _value(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def _labels(metric: Mapping[str, Any]) -> tuple[str, Labels]:
    name = str(metric.get("__name__", ""))
    labels = tuple(sorted((str(k), str(v)) for k, v in metric.items() if k != "__name__"))
    return name, labels


def matrix_steps(matrix: Iterable[Mapping[str, Any]]) -> dict[float, Samples]:
    """A ``query_range`` matrix of raw series → the samples at each step."""
    steps: dict[float, dict[str, list[tuple[Labels, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for series in matrix:
        name, labels = _labels(series.get("metric") or {})
        for t, raw in series.get("values") or ():
            value = _value(raw)
            if not math.isnan(value):
                steps[round(float(t), 3)][name].append((labels, value))
    return {t: Samples(dict(by_name)) for t, by_name in steps.items()}


def spacing(matrix: Iterable[Mapping[str, Any]]) -> float | None:
    """The scrape resolution of raw samples (a range-vector result): the coarsest series'
    median distance between consecutive samples."""
    medians = []
    for series in matrix:
        times = [float(t) for t, _ in series.get("values") or ()]
        gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
        if gaps:
            medians.append(statistics.median(gaps))
    return round(max(medians), 3) if medians else None


def _pods(samples: Samples, name: str) -> int:
    return len({dict(ls).get("pod", "") for ls, _ in samples.by_name.get(name, ())})


def procs_reading(
    tier: str, samples: Samples, source: str
) -> tuple[dict[str, float], dict[str, float]]:
    """One tier's CPU series → (gauges, counters) under the ``procs`` collector's keys."""
    gauges: dict[str, float] = {}
    counters: dict[str, float] = {}
    if source == "cadvisor":
        cpu = samples.value("container_cpu_usage_seconds_total")
        if cpu is None:
            return gauges, counters
        counters[f"cpu.{tier}"] = cpu
        pods = _pods(samples, "container_cpu_usage_seconds_total")
        gauges[f"procs.{tier}"] = float(pods)
        gauges[f"replicas.{tier}"] = float(pods)
        memory = samples.value("container_memory_working_set_bytes")
        if memory is not None:
            gauges[f"rss_mb.{tier}"] = memory / 2**20
        periods = samples.value("container_cpu_cfs_periods_total")
        throttled = samples.value("container_cpu_cfs_throttled_periods_total")
        if periods is not None and throttled is not None:
            counters[f"periods.{tier}"] = periods
            counters[f"throttled_periods.{tier}"] = throttled
        throttled_s = samples.value("container_cpu_cfs_throttled_seconds_total")
        if throttled_s is not None:
            counters[f"throttled.{tier}"] = throttled_s
        quotas = samples.by("container_spec_cpu_quota", "pod")
        periods_us = samples.by("container_spec_cpu_period", "pod")
        limit = sum(q / periods_us[p] for p, q in quotas.items() if q > 0 and periods_us.get(p))
        if limit > 0:
            gauges[f"cpu_limit.{tier}"] = limit
        return gauges, counters
    cpu = samples.value("namedprocess_namegroup_cpu_seconds_total")
    if cpu is None:
        return gauges, counters
    counters[f"cpu.{tier}"] = cpu
    procs = samples.value("namedprocess_namegroup_num_procs")
    if procs is not None:
        gauges[f"procs.{tier}"] = procs
    rss = samples.value("namedprocess_namegroup_memory_bytes", memtype="resident")
    if rss is not None:
        gauges[f"rss_mb.{tier}"] = rss / 2**20
    threads = samples.value("namedprocess_namegroup_num_threads")
    runnable = samples.value("namedprocess_namegroup_states", state="Running")
    counted = samples.value("namedprocess_namegroup_states")
    if runnable is not None and procs is not None and threads is not None:
        if threads == procs:
            gauges[f"runnable.{tier}"] = runnable  # threads on a CPU or waiting for one
        elif counted is not None and counted >= threads:
            gauges[f"runnable.{tier}"] = runnable_floor(runnable, counted - threads)
            gauges[f"runnable_floor.{tier}"] = 1.0
    return gauges, counters


def runnable_floor(running: float, doubled: float) -> float:
    """The fewest threads that can have been runnable, from process-exporter's states.

    process-exporter (0.7.10, ``-threads`` on) counts a single-threaded process's state
    once, and a multi-threaded process's state once for the process (its main thread's)
    and once per thread, so the states add up to the threads plus ``doubled``, the
    multi-threaded processes (measured with the real exporter: ``tests/unit/data``). At
    most one main thread per such process is counted twice, and only one that was itself
    runnable: at least ``running - doubled`` and at least half of ``running`` were. (A floor
    on the double count only: like the exact count, it is a sample at the scrape's instant,
    and a scrape that coincides with Prometheus' scrape of the tier itself finds the thread
    answering it runnable: a registry using 0.04 CPU read as 0.5 at light load.)"""
    return max(running - doubled, running / 2, 0.0)


def host_reading(samples: Samples) -> tuple[dict[str, float], dict[str, float]]:
    """node-exporter's CPU seconds → ``host.*`` (summed over the selected nodes)."""
    modes = samples.by("node_cpu_seconds_total", "mode")
    if not modes:
        return {}, {}
    total = sum(modes.values())
    idle = modes.get(("idle",), 0.0) + modes.get(("iowait",), 0.0)
    per_node: dict[str, set[str]] = defaultdict(set)
    for ls, _ in samples.by_name.get("node_cpu_seconds_total", ()):
        d = dict(ls)
        per_node[d.get("instance", "")].add(d.get("cpu", ""))
    cores = max(len(cpus) for cpus in per_node.values())
    return {"host.cores": float(cores)}, {
        "host.total": total,
        "host.busy": total - idle,
        "host.steal": modes.get(("steal",), 0.0),
    }


def nginx_reading(samples: Samples) -> Reading:
    """prometheus-nginx-exporter (stub_status) → the ``stub_status`` collector's keys."""
    active = samples.value("nginx_connections_active")
    if active is None:
        return Reading(error="no nginx_connections_active sample")
    gauges = {"active": active}
    for key in ("reading", "writing", "waiting"):
        if (v := samples.value(f"nginx_connections_{key}")) is not None:
            gauges[key] = v
    accepts = samples.value("nginx_connections_accepted") or 0.0
    handled = samples.value("nginx_connections_handled") or 0.0
    return Reading(
        gauges=gauges,
        counters={
            "accepts": accepts,
            "handled": handled,
            "requests": samples.value("nginx_http_requests_total") or 0.0,
            "dropped": accepts - handled,
        },
    )


def redis_reading(samples: Samples) -> Reading:
    """prometheus-redis-exporter → the ``redis`` collector's keys (commandstats included)."""
    if samples.value("redis_commands_processed_total") is None:
        return Reading(error="no redis_commands_processed_total sample")
    counters: dict[str, float] = {
        "commands": samples.value("redis_commands_processed_total") or 0.0,
        "slowlog": samples.value("redis_slowlog_last_id") or 0.0,
    }
    main = [samples.value(f"redis_cpu_{m}_main_thread_seconds_total") for m in ("sys", "user")]
    whole = [samples.value(f"redis_cpu_{m}_seconds_total") for m in ("sys", "user")]
    chosen = main if any(v is not None for v in main) else whole
    counters["cpu"] = sum(v for v in chosen if v is not None)
    busy = 0.0
    calls = samples.by("redis_commands_total", "cmd")
    for (cmd,), seconds in samples.by("redis_commands_duration_seconds_total", "cmd").items():
        counters[f"cmd.{cmd}.usec"] = seconds * 1e6
        counters[f"cmd.{cmd}.calls"] = calls.get((cmd,), 0.0)
        busy += seconds * 1e6
    counters["busy_usec"] = busy
    gauges = {
        "clients": samples.value("redis_connected_clients") or 0.0,
        "blocked": samples.value("redis_blocked_clients") or 0.0,
    }
    return Reading(gauges=gauges, counters=counters)


READERS: Mapping[str, Callable[[Samples], Reading]] = {
    "nginx": nginx_reading,
    "auth": auth_reading,
    "registry": registry_reading,
    "redis": redis_reading,
}
"""Tier → the reader of its own metrics (a step's samples → the local collector's keys)."""


def _failed_scrape(tier: str, samples: Samples | None) -> str | None:
    """Why this step's scrape of the tier's metrics gave nothing to read (None: it did).
    Prometheus records ``up`` and ``scrape_duration_seconds`` even for a scrape that failed
    or timed out; the tier's own series are then stale at that step."""
    if samples is None:
        return None
    ups = [v for _, v in samples.by_name.get(UP, ())]
    down = bool(ups) and all(v == 0 for v in ups)
    if not down and any(name not in (UP, SCRAPE) for name in samples.by_name):
        return None
    took = [v for _, v in samples.by_name.get(SCRAPE, ())]
    after = f" after {max(took):.2f} s" if took else ""
    if down:
        return f"Prometheus' scrape of the {tier} metrics failed{after} (up=0)"
    return f"Prometheus' scrape of the {tier} metrics held none of its series{after}"


def _with_scrape(reading: Reading, samples: Samples, floor: float | None) -> Reading:
    """The reading plus ``scrape_s`` (this scrape's duration; the slowest instance) and
    ``scrape_floor_s``."""
    durations = [v for _, v in samples.by_name.get(SCRAPE, ())]
    if reading.error is not None or not durations:
        return reading
    gauges = {**reading.gauges, "scrape_s": max(durations)}
    if floor is not None:
        gauges["scrape_floor_s"] = floor
    return Reading(gauges, reading.counters, reading.hists, reading.notes, reading.error)


def build_collection(
    results: Mapping[Query, Sequence[Mapping[str, Any]]],
    times: Sequence[float],
    *,
    cpu_source: str,
    meta: Mapping[str, Any],
    scrape_floors: Mapping[str, float] | None = None,
) -> tuple[Collection, tuple[str, ...]]:
    """Range-query results → (the collection, the tiers no series was found for).

    ``times``: the query steps. A tier is *unseen* when neither its CPU nor its metrics
    query returned a series; a step where a seen tier's metrics are missing is an
    unreadable reading for that step. ``scrape_floors``: per tier, the fastest scrape
    of its metrics around the window (the cost of answering one with no queue).
    """
    stepped = {q: matrix_steps(m) for q, m in results.items()}
    seen = {q.tier for q, m in results.items() if m and q.kind != "host"}
    tiers = sorted({q.tier for q in results if q.kind != "host"})
    ticks = []
    for t in times:
        gauges: dict[str, float] = {}
        counters: dict[str, float] = {}
        readings: dict[str, Reading] = {}
        for q, steps in stepped.items():
            samples = steps.get(t)
            if q.kind == "host":
                if samples is not None:
                    g, c = host_reading(samples)
                    gauges.update(g)
                    counters.update(c)
            elif q.kind == "cpu":
                if samples is not None:
                    g, c = procs_reading(q.tier, samples, cpu_source)
                    gauges.update(g)
                    counters.update(c)
            elif results[q]:
                collector = COLLECTOR[q.tier]
                failed = _failed_scrape(q.tier, samples)
                readings[collector] = (
                    _with_scrape(
                        READERS[q.tier](samples), samples, (scrape_floors or {}).get(q.tier)
                    )
                    if samples is not None and failed is None
                    else Reading(error=failed or f"no {q.tier} samples at this step")
                )
        readings["procs"] = Reading(gauges=gauges, counters=counters)
        ticks.append(Tick(t=t, readings=readings))
    unseen = tuple(t for t in tiers if t not in seen)
    return Collection(ticks=tuple(ticks), meta=dict(meta)), unseen


def merge_local(collection: Collection, local: Sequence[Tick], tiers: Sequence[str]) -> Collection:
    """Add locally sampled ``procs`` keys of ``tiers`` (the load generator, the diagnosis)
    to each step: the newest local tick at or before the step."""
    if not local:
        return collection
    ticks = []
    for tick in collection.ticks:
        before = [lt for lt in local if lt.t <= tick.t + 0.5]
        reading = before[-1].reading("procs") if before else None
        procs = tick.reading("procs") or Reading()
        if reading is None or reading.error is not None:
            ticks.append(tick)
            continue

        def mine(key: str) -> bool:
            return key.rsplit(".", 1)[-1] in tiers

        gauges = {**procs.gauges, **{k: v for k, v in reading.gauges.items() if mine(k)}}
        counters = {**procs.counters, **{k: v for k, v in reading.counters.items() if mine(k)}}
        readings = dict(tick.readings)
        readings["procs"] = Reading(gauges=gauges, counters=counters)
        ticks.append(Tick(t=tick.t, readings=readings))
    return Collection(ticks=tuple(ticks), meta=collection.meta)

"""Pure: a collection's ticks → the signals a verdict is made of.

Every number here is measured during the window with traffic (:func:`series.active_window`);
nothing is read from the stack's configuration. CPU is in *cores* (1.0 = one CPU busy for
the whole window). ``demand`` is CPU used plus time spent runnable but waiting for a CPU
(``/proc/<pid>/task/*/schedstat``): a tier whose demand reaches the CPUs it can use is
CPU-bound, whether it got them (``cpu``) or queued for them (``runq``) behind the rest of
the host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keelhaul.diagnose.model import Collection, Tick
from keelhaul.diagnose.series import (
    active_window,
    gauge_series,
    intervals,
    mean,
    rate_series,
    sum_rate_series,
    window_delta,
    window_rate,
)
from keelhaul.diagnose.signals_tiers import (
    AuthView,
    ProxyView,
    RedisView,
    RegistryView,
    auth_view,
    proxy_view,
    redis_view,
    registry_view,
)
from keelhaul.diagnose.sources import SourceInfo
from keelhaul.diagnose.workerwait import TOKEN_STAGE, with_worker_wait

__all__ = ["TIERS", "ClientStage", "Signals", "TierCpu", "derive", "traffic_series"]

TIERS = ("generator", "nginx", "auth", "registry", "redis", "diagnosis")


@dataclass(frozen=True)
class TierCpu:
    cpu: float
    """Cores used (mean over the window)."""
    runq: float
    """Cores' worth of runnable-but-waiting time."""
    busiest: float | None
    """Cores used by the busiest single thread (1.0: a thread pinned to a CPU)."""
    procs: float
    rss_mb: float
    throttled_share: float | None = None
    """Share of the cgroup's CPU periods in which it was throttled by its quota."""
    cpu_limit: float | None = None
    runq_seen: bool = True
    """False: the source cannot see run-queue wait (Prometheus); demand is CPU used only."""
    runq_floor: bool = False
    """True: ``runq`` comes from process-exporter's states of multi-threaded processes, whose
    double count of main threads it removes at the most (:func:`promseries.runnable_floor`)."""
    replicas: float | None = None
    """Pods running the tier (cAdvisor), mean over the window."""

    @property
    def demand(self) -> float:
        return self.cpu + self.runq

    @property
    def waiting_share(self) -> float:
        """Of the time the tier wanted a CPU, the share it spent waiting for one."""
        return self.runq / self.demand if self.demand > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "runq": self.runq,
            "demand": self.demand,
            "busiest_thread": self.busiest,
            "procs": self.procs,
            "rss_mb": self.rss_mb,
            "throttled_share": self.throttled_share,
            "cpu_limit": self.cpu_limit,
            "runq_seen": self.runq_seen,
            "runq_floor": self.runq_floor,
            "replicas": self.replicas,
        }


@dataclass(frozen=True)
class ClientStage:
    """The load generator's own view of one stage (from the load kit's statistics)."""

    name: str
    count: int
    failures: int
    rps: float
    mean_ms: float | None
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Signals:
    start: float
    end: float
    cores: int
    host_busy: float | None
    """Share of all CPUs busy (everything on the host)."""
    other_cores: float | None
    """Cores used by processes that are neither the stack, the generator nor the diagnosis."""
    tiers: Mapping[str, TierCpu]
    proxy: ProxyView | None
    auth: AuthView | None
    registry: RegistryView | None
    redis: RedisView | None
    client: Sequence[ClientStage] = ()
    notes: Sequence[str] = ()
    errors: Mapping[str, int] = field(default_factory=dict)
    """Collector → ticks in which it could not read."""
    active: bool = True
    source: SourceInfo = field(default_factory=SourceInfo)
    steps: int = 0
    """Samples (ticks) in the window the signals were made from."""

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    def tier(self, name: str) -> TierCpu | None:
        return self.tiers.get(name)


def traffic_series(ticks: Sequence[Tick]) -> list[tuple[float, float | None]]:
    """Requests per second the stack served: at the proxy when there is one, else the tiers."""
    if any(t.reading("nginx_log") is not None for t in ticks):
        return sum_rate_series(ticks, "nginx_log", lambda k: k.startswith("n."))
    auth = rate_series(ticks, "auth", "requests")
    registry = rate_series(ticks, "registry", "requests")
    proxy = _proxy_requests(ticks)
    out: list[tuple[float, float | None]] = []
    for (t, a), (_, r), (_, p) in zip(auth, registry, proxy, strict=True):
        tiers = (a or 0.0) + (r or 0.0) if a is not None or r is not None else None
        out.append((t, tiers if tiers else p if p is not None else tiers))
    return out


def _proxy_requests(ticks: Sequence[Tick]) -> list[tuple[float, float | None]]:
    """nginx's own request count (stub_status) less the one status request per sample:
    traffic even when the tiers behind it cannot answer their metrics (all workers busy)."""
    out: list[tuple[float, float | None]] = []
    for a, b in intervals(ticks):
        x, y = a.counter("stub_status", "requests"), b.counter("stub_status", "requests")
        out.append((b.t, None if x is None or y is None else max(0.0, y - x - 1) / (b.t - a.t)))
    return out


def _tier_cpu(ticks: Sequence[Tick], tier: str) -> TierCpu | None:
    cpu = window_rate(ticks, "procs", f"cpu.{tier}")
    if cpu is None:
        return None
    periods = window_delta(ticks, "procs", f"periods.{tier}")
    throttled = window_delta(ticks, "procs", f"throttled_periods.{tier}")
    limits = [g for _, g in gauge_series(ticks, "procs", f"cpu_limit.{tier}") if g is not None]
    runq = window_rate(ticks, "procs", f"runq.{tier}")
    if runq is None:
        runq = _sampled_runq(ticks, tier, cpu)
    return TierCpu(
        cpu=cpu,
        runq=runq or 0.0,
        busiest=mean([g for _, g in gauge_series(ticks, "procs", f"busiest.{tier}")]),
        procs=mean([g for _, g in gauge_series(ticks, "procs", f"procs.{tier}")]) or 0.0,
        rss_mb=mean([g for _, g in gauge_series(ticks, "procs", f"rss_mb.{tier}")]) or 0.0,
        throttled_share=(throttled / periods) if periods and throttled is not None else None,
        cpu_limit=limits[-1] if limits else None,
        runq_seen=runq is not None,
        runq_floor=any(g for _, g in gauge_series(ticks, "procs", f"runnable_floor.{tier}")),
        replicas=mean([g for _, g in gauge_series(ticks, "procs", f"replicas.{tier}")]),
    )


def _sampled_runq(ticks: Sequence[Tick], tier: str, cpu: float) -> float | None:
    """Without schedstat (Prometheus' process-exporter): the mean number of the tier's
    threads found runnable (state R) at each scrape is its demand in CPUs (Little's law),
    so the time waiting for a CPU is that minus the CPU it used.

    Exact where every process of the tier is single-threaded; where some are not,
    process-exporter counts their main threads twice and :func:`promseries.runnable_floor`
    removes that double count at the most (``runq_floor`` in :class:`TierCpu`); both are
    samples at the scrape's instant, not a measured wait; without the thread metrics,
    nothing."""
    runnable = [g for _, g in gauge_series(ticks, "procs", f"runnable.{tier}")]
    if not runnable or any(g is None for g in runnable):
        return None
    return max(0.0, (mean(runnable) or 0.0) - cpu)


def _host(ticks: Sequence[Tick], tiers: Mapping[str, TierCpu]) -> tuple[float | None, float | None]:
    busy = window_delta(ticks, "procs", "host.busy")
    total = window_delta(ticks, "procs", "host.total")
    rate = window_rate(ticks, "procs", "host.busy")
    if busy is None or not total or rate is None:
        return None, None
    ours = sum(t.cpu for t in tiers.values())
    return busy / total, max(0.0, rate - ours)


def _errors(ticks: Sequence[Tick]) -> dict[str, int]:
    out: dict[str, int] = {}
    for tick in ticks:
        for name, reading in tick.readings.items():
            if reading.error is not None:
                out[name] = out.get(name, 0) + 1
    return out


def _notes(ticks: Sequence[Tick], limit: int = 12) -> list[str]:
    seen: list[str] = []
    for tick in ticks:
        for reading in tick.readings.values():
            for note in reading.notes:
                if note not in seen:
                    seen.append(note)
                if len(seen) >= limit:
                    return seen
    return seen


def _client_mean(client: Sequence[ClientStage], stage: str) -> float | None:
    row = next((c for c in client if c.name == stage), None)
    return row.mean_ms / 1000 if row is not None and row.mean_ms is not None else None


def derive(collection: Collection, client: Sequence[ClientStage] = ()) -> Signals:
    ticks = list(collection.ticks)
    cores = int(collection.meta.get("cores") or 1)
    source = SourceInfo.from_meta(collection.meta)
    window = active_window(ticks, traffic_series(ticks)) if len(ticks) >= 2 else None
    active = window is not None
    if window is not None:
        ticks = ticks[window[0] : window[1] + 1]
    if len(ticks) < 2:
        t = ticks[0].t if ticks else 0.0
        return Signals(
            t, t, cores, None, None, {}, None, None, None, None, client, active=False,
            source=source, steps=len(ticks),
        )  # fmt: skip
    tiers = {name: tc for name in TIERS if (tc := _tier_cpu(ticks, name)) is not None}
    host_busy, other = _host(ticks, tiers)
    proxy = proxy_view(ticks)
    return Signals(
        start=ticks[0].t,
        end=ticks[-1].t,
        cores=cores,
        host_busy=host_busy,
        other_cores=other,
        tiers=tiers,
        proxy=proxy,
        auth=with_worker_wait(auth_view(ticks), proxy, _client_mean(client, TOKEN_STAGE)),
        registry=registry_view(ticks),
        redis=redis_view(ticks),
        client=tuple(client),
        notes=_notes(ticks),
        errors=_errors(ticks),
        active=active,
        source=source,
        steps=len(ticks),
    )

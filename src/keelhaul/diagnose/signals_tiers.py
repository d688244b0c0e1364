"""Pure: each server tier's view of the window (proxy, token service, registry, Redis)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from keelhaul.diagnose.model import Hist, Tick
from keelhaul.diagnose.series import (
    gauge_series,
    hist_delta,
    intervals,
    mean,
    median,
    share,
    window_delta,
    window_rate,
)
from keelhaul.diagnose.stages import upstream_of

__all__ = [
    "AuthView",
    "ProxyView",
    "RedisView",
    "RegistryView",
    "StageView",
    "auth_view",
    "proxy_view",
    "redis_view",
    "registry_view",
]


def _keys(ticks: Sequence[Tick], collector: str, prefix: str) -> list[str]:
    """Suffixes of counter keys ``prefix.<suffix>`` seen in the window."""
    found: set[str] = set()
    for tick in ticks:
        reading = tick.reading(collector)
        if reading is None:
            continue
        found.update(k[len(prefix) + 1 :] for k in reading.counters if k.startswith(prefix + "."))
        found.update(k[len(prefix) + 1 :] for k in reading.hists if k.startswith(prefix + "."))
    return sorted(found)


def _error_share(ticks: Sequence[Tick], collector: str) -> float | None:
    seen = [t.reading(collector) for t in ticks]
    present = [r for r in seen if r is not None]
    if not present:
        return None
    return sum(1 for r in present if r.error is not None) / len(present)


def _q(hist: Hist | None, q: float) -> float | None:
    return hist.quantile(q) if hist is not None else None


@dataclass(frozen=True)
class StageView:
    """One stage as the proxy saw it. Times in seconds (means unless named)."""

    name: str
    upstream: str
    count: float
    rps: float
    errors: float
    statuses: Mapping[str, float]
    request_mean: float | None
    request_p50: float | None
    request_p99: float | None
    connect_mean: float | None
    header_mean: float | None
    response_mean: float | None
    overhead_mean: float | None
    overhead_p99: float | None


@dataclass(frozen=True)
class ProxyView:
    rps: float
    stages: Sequence[StageView]
    active_mean: float | None
    active_max: float | None
    dropped: float
    """Connections nginx accepted and then had to drop (stub_status accepts - handled)."""
    conn_exhausted: float
    """Error-log alerts: ``worker_connections are not enough``."""
    upstream_timeouts: float
    upstream_failed: float
    queue_mean: float | None
    queue_share: float | None
    status_error_share: float | None
    """Share of samples in which nginx's own status page did not answer."""
    workers: float | None

    def stage(self, name: str) -> StageView | None:
        return next((s for s in self.stages if s.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stage_view(ticks: Sequence[Tick], name: str, seconds: float) -> StageView | None:
    count = window_delta(ticks, "nginx_log", f"n.{name}") or 0.0
    if count <= 0:
        return None
    up = window_delta(ticks, "nginx_log", f"up.{name}") or 0.0

    def per(key: str, n: float) -> float | None:
        total = window_delta(ticks, "nginx_log", f"{key}.{name}")
        return total / n if total is not None and n > 0 else None

    rt = hist_delta(ticks, "nginx_log", f"rt.{name}")
    ov = hist_delta(ticks, "nginx_log", f"ov.{name}")
    statuses = {
        code: v
        for code in ("499", "502", "503", "504")
        if (v := window_delta(ticks, "nginx_log", f"s{code}.{name}"))
    }
    return StageView(
        name=name,
        upstream=upstream_of(name),
        count=count,
        rps=count / seconds if seconds > 0 else 0.0,
        errors=window_delta(ticks, "nginx_log", f"err.{name}") or 0.0,
        statuses=statuses,
        request_mean=per("rt", count),
        request_p50=_q(rt, 0.5),
        request_p99=_q(rt, 0.99),
        connect_mean=per("uc", up),
        header_mean=per("uh", up),
        response_mean=per("ur", up),
        overhead_mean=ov.mean() if ov is not None else None,
        overhead_p99=_q(ov, 0.99),
    )


def proxy_view(ticks: Sequence[Tick]) -> ProxyView | None:
    if not any(t.reading("nginx_log") is not None or t.reading("stub_status") for t in ticks):
        return None
    seconds = ticks[-1].t - ticks[0].t
    stages = [
        view
        for name in _keys(ticks, "nginx_log", "n")
        if (view := _stage_view(ticks, name, seconds))
    ]
    stages.sort(key=lambda s: -s.count)
    active = [g for _, g in gauge_series(ticks, "stub_status", "active")]
    queue = [g for _, g in gauge_series(ticks, "listen", "queue.nginx")]
    procs = mean([g for _, g in gauge_series(ticks, "procs", "procs.nginx")])
    return ProxyView(
        rps=sum(s.rps for s in stages),
        stages=stages,
        active_mean=mean(active),
        active_max=max((a for a in active if a is not None), default=None),
        dropped=window_delta(ticks, "stub_status", "dropped") or 0.0,
        conn_exhausted=window_delta(ticks, "logs", "nginx.conn_exhausted") or 0.0,
        upstream_timeouts=window_delta(ticks, "logs", "nginx.upstream_timeout") or 0.0,
        upstream_failed=window_delta(ticks, "logs", "nginx.upstream_failed") or 0.0,
        queue_mean=mean(queue),
        queue_share=share(queue, lambda v: v > 0),
        status_error_share=_error_share(ticks, "stub_status"),
        workers=procs - 1 if procs is not None and procs > 1 else procs,
    )


@dataclass(frozen=True)
class AuthView:
    rps: float
    workers: float | None
    capacity: float | None
    inflight_mean: float | None
    slots_full_share: float | None
    """Share of samples in which in-flight plus queued requests filled every worker slot."""
    queue_mean: float | None
    queue_share: float | None
    app_mean: float | None
    app_p99: float | None
    stages: Mapping[str, float]
    """Stage → mean seconds in the app (parse, authn, authz, sign)."""
    authn_cache: Mapping[str, tuple[float, float | None]]
    """Credential-cache result → (requests, mean authn seconds)."""
    worker_timeouts: float = 0.0
    worker_kills: float = 0.0
    worker_boots: float = 0.0
    server_errors: float = 0.0
    redis_degraded: bool = False
    scrape_error_share: float | None = None
    outcomes: Mapping[str, float] = field(default_factory=dict)
    wait_mean: float | None = None
    """Seconds a request waited for a worker before the app saw it (:mod:`.workerwait`)."""
    wait_basis: str | None = None
    wait_observer: str | None = None
    """Who timed the wait: ``proxy``, ``client`` (the load generator) or ``scrape``."""
    scrape_median: float | None = None
    """Prometheus' scrapes of the token service's /metrics: median duration in the window."""
    scrape_floor: float | None = None
    """... and the fastest one around it (answering with no queue)."""

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["authn_cache"] = {k: {"count": c, "mean": m} for k, (c, m) in self.authn_cache.items()}
        return doc


def auth_view(ticks: Sequence[Tick]) -> AuthView | None:
    if not any(t.reading("auth") is not None for t in ticks):
        return None
    full: list[float | None] = []
    for _, b in intervals(ticks):
        inflight, capacity = b.gauge("auth", "inflight"), b.gauge("auth", "capacity")
        queued = b.gauge("listen", "queue.auth") or 0.0
        if inflight is None or not capacity:
            full.append(None)
            continue
        full.append(1.0 if inflight + queued >= capacity else 0.0)
    queue = [g for _, g in gauge_series(ticks, "listen", "queue.auth")]
    request = hist_delta(ticks, "auth", "request")
    stages: dict[str, float] = {}
    for stage in ("parse", "authn", "authz", "sign"):
        h = hist_delta(ticks, "auth", f"stage.{stage}")
        if h is not None and (m := h.mean()) is not None:
            stages[stage] = m
    caches: dict[str, tuple[float, float | None]] = {}
    for key in {k for t in ticks if (r := t.reading("auth")) for k in r.hists}:
        if key.startswith("stage.authn."):
            h = hist_delta(ticks, "auth", key)
            if h is not None:
                caches[key.removeprefix("stage.authn.")] = (h.count, h.mean())
    outcomes = {
        k: v
        for k in _keys(ticks, "auth", "requests")
        if (v := window_delta(ticks, "auth", f"requests.{k}"))
    }
    degraded = [g for _, g in gauge_series(ticks, "auth", "redis_degraded")]
    return AuthView(
        rps=window_rate(ticks, "auth", "requests") or 0.0,
        workers=mean([g for _, g in gauge_series(ticks, "auth", "workers")]),
        capacity=mean([g for _, g in gauge_series(ticks, "auth", "capacity")]),
        inflight_mean=mean([g for _, g in gauge_series(ticks, "auth", "inflight")]),
        slots_full_share=share(full, lambda v: v > 0),
        queue_mean=mean(queue),
        queue_share=share(queue, lambda v: v > 0),
        app_mean=request.mean() if request is not None else None,
        app_p99=_q(request, 0.99),
        stages=stages,
        authn_cache=caches,
        worker_timeouts=window_delta(ticks, "logs", "auth.worker_timeout") or 0.0,
        worker_kills=window_delta(ticks, "logs", "auth.worker_killed") or 0.0,
        worker_boots=window_delta(ticks, "logs", "auth.worker_boot") or 0.0,
        server_errors=outcomes.get("error", 0.0) + outcomes.get("backend_error", 0.0),
        redis_degraded=any(d for d in degraded if d),
        scrape_error_share=_error_share(ticks, "auth"),
        outcomes=outcomes,
        scrape_median=median([g for _, g in gauge_series(ticks, "auth", "scrape_s")]),
        scrape_floor=mean([g for _, g in gauge_series(ticks, "auth", "scrape_floor_s")]),
    )


@dataclass(frozen=True)
class RegistryView:
    rps: float
    inflight_mean: float | None
    inflight_max: float | None
    handlers: Mapping[str, tuple[float, float | None, float | None]]
    """Stage → (requests, mean seconds, p99 seconds) inside the registry's handlers."""
    handler_mean: float | None
    storage_per_request: float | None
    """Storage-driver seconds per registry request."""
    storage_actions: Mapping[str, tuple[float, float | None]]
    scrape_error_share: float | None
    server_errors: float
    goroutines: float | None

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["handlers"] = {
            k: {"count": c, "mean": m, "p99": p} for k, (c, m, p) in self.handlers.items()
        }
        doc["storage_actions"] = {
            k: {"count": c, "mean": m} for k, (c, m) in self.storage_actions.items()
        }
        return doc


def registry_view(ticks: Sequence[Tick]) -> RegistryView | None:
    if not any(t.reading("registry") is not None for t in ticks):
        return None
    hist_keys = {k for t in ticks if (r := t.reading("registry")) for k in r.hists}
    handlers: dict[str, tuple[float, float | None, float | None]] = {}
    total_count = total_sum = 0.0
    for key in sorted(k for k in hist_keys if k.startswith("req.")):
        h = hist_delta(ticks, "registry", key)
        if h is None:
            continue
        handlers[key.removeprefix("req.")] = (h.count, h.mean(), h.quantile(0.99))
        total_count += h.count
        total_sum += h.sum
    actions: dict[str, tuple[float, float | None]] = {}
    for key in sorted(k for k in hist_keys if k.startswith("storage.")):
        h = hist_delta(ticks, "registry", key)
        if h is not None:
            actions[key.removeprefix("storage.")] = (h.count, h.mean())
    storage = hist_delta(ticks, "registry", "storage")
    inflight = [g for _, g in gauge_series(ticks, "registry", "inflight")]
    return RegistryView(
        rps=window_rate(ticks, "registry", "requests") or 0.0,
        inflight_mean=mean(inflight),
        inflight_max=max((v for v in inflight if v is not None), default=None),
        handlers=handlers,
        handler_mean=total_sum / total_count if total_count else None,
        storage_per_request=storage.sum / total_count if storage and total_count else None,
        storage_actions=actions,
        scrape_error_share=_error_share(ticks, "registry"),
        server_errors=window_delta(ticks, "registry", "s5xx") or 0.0,
        goroutines=mean([g for _, g in gauge_series(ticks, "registry", "goroutines")]),
    )


@dataclass(frozen=True)
class RedisView:
    busy_share: float | None
    """Share of the time Redis' one thread spent executing commands."""
    ping_p50_ms: float | None
    ping_max_ms: float | None
    ops: float | None
    slowlog: float
    top_commands: Sequence[tuple[str, float, float, float]]
    """(command, share of busy time, µs per call, calls per second), busiest first."""
    clients: float | None
    blocked_max: float | None
    error_share: float | None
    cpu: float | None

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["top_commands"] = [
            {"command": c, "busy_share": s, "usec_per_call": u, "calls_per_s": r}
            for c, s, u, r in self.top_commands
        ]
        return doc


OWN_COMMANDS = frozenset(
    {"info", "slowlog|get", "latency|latest", "slowlog|len", "config|get", "client|setname"}
)
"""What the diagnosis itself (and prometheus-redis-exporter, each scrape) sends: never a
suspect."""


def _top_commands(ticks: Sequence[Tick], seconds: float) -> list[tuple[str, float, float, float]]:
    names = {k.split(".")[0] for k in _keys(ticks, "redis", "cmd")} - OWN_COMMANDS
    rows = []
    busy = window_delta(ticks, "redis", "busy_usec") or 0.0
    for name in names:
        usec = window_delta(ticks, "redis", f"cmd.{name}.usec") or 0.0
        calls = window_delta(ticks, "redis", f"cmd.{name}.calls") or 0.0
        if usec <= 0 or calls <= 0:
            continue
        rows.append((name, usec / busy if busy else 0.0, usec / calls, calls / seconds))
    rows.sort(key=lambda r: -r[1])
    return rows[:5]


def redis_view(ticks: Sequence[Tick]) -> RedisView | None:
    if not any(t.reading("redis") is not None for t in ticks):
        return None
    seconds = max(ticks[-1].t - ticks[0].t, 1e-9)
    busy = window_rate(ticks, "redis", "busy_usec")
    ping = [g for _, g in gauge_series(ticks, "redis", "ping_ms")]
    blocked = [g for _, g in gauge_series(ticks, "redis", "blocked")]
    return RedisView(
        busy_share=busy / 1e6 if busy is not None else None,
        ping_p50_ms=median(ping),
        ping_max_ms=max((p for p in ping if p is not None), default=None),
        ops=window_rate(ticks, "redis", "commands"),
        slowlog=window_delta(ticks, "redis", "slowlog") or 0.0,
        top_commands=_top_commands(ticks, seconds),
        clients=mean([g for _, g in gauge_series(ticks, "redis", "clients")]),
        blocked_max=max((b for b in blocked if b is not None), default=None),
        error_share=_error_share(ticks, "redis"),
        cpu=window_rate(ticks, "redis", "cpu"),
    )

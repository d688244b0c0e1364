"""Pure: where one request of each stage spent its time, from the outside in.

Means, not percentiles, because means add up: the segments of a stage sum to the mean
time its outermost observer measured (the load generator when its statistics are given,
else the proxy). Each segment is the difference between two observers that nest:

=============================  ===================================================
segment                        measured as
=============================  ===================================================
client: connect and queue      client mean - nginx ``request_time``
proxy (nginx)                  ``request_time`` - ``upstream_response_time``
upstream connect               ``upstream_connect_time``
waiting for a worker           token service: upstream time - the app's own time
token service: <stage>         the app's per-stage histograms (authn with cache result)
token service: the rest        the app's time - its stages (Flask, JSON, metrics)
registry: outside the handler  upstream time - the handler's time (accept, scheduler)
storage driver                 storage-driver seconds per registry request
registry handler               the handler's time - storage
=============================  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keelhaul.diagnose.signals import ClientStage, Signals
from keelhaul.diagnose.signals_tiers import AuthView, RegistryView, StageView

__all__ = ["Segment", "Waterfall", "waterfalls"]


@dataclass(frozen=True)
class Segment:
    name: str
    tier: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tier": self.tier, "ms": self.seconds * 1000}


@dataclass(frozen=True)
class Waterfall:
    stage: str
    count: float
    observer: str
    """Whose total this is: ``client`` or ``proxy``."""
    total: float
    segments: tuple[Segment, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "count": self.count,
            "observer": self.observer,
            "total_ms": self.total * 1000,
            "segments": [s.as_dict() for s in self.segments],
        }


def _seg(out: list[Segment], name: str, tier: str, seconds: float | None) -> None:
    if seconds is not None and seconds > 0:
        out.append(Segment(name, tier, seconds))


def _token(out: list[Segment], upstream: float, auth: AuthView | None) -> None:
    if auth is None or auth.app_mean is None:
        _seg(out, "token service", "auth", upstream)
        return
    app = min(auth.app_mean, upstream) if upstream > 0 else auth.app_mean
    _seg(out, "waiting for a free worker", "auth", upstream - app)
    stages = 0.0
    for stage in ("parse", "authn", "authz", "sign"):
        seconds = auth.stages.get(stage)
        if seconds is None:
            continue
        seconds = min(seconds, app - stages)
        name = f"token service: {stage}"
        if stage == "authn" and auth.authn_cache:
            top = max(auth.authn_cache.items(), key=lambda kv: kv[1][0])[0]
            name += f" (cache {top})"
        _seg(out, name, "auth", seconds)
        stages += max(seconds, 0.0)
    _seg(out, "token service: the rest (Flask, JSON, metrics)", "auth", app - stages)


def _registry(out: list[Segment], stage: str, upstream: float, reg: RegistryView | None) -> None:
    handler = reg.handlers.get(stage) if reg is not None else None
    if reg is None or handler is None or handler[1] is None:
        _seg(out, "registry", "registry", upstream)
        return
    inside = min(handler[1], upstream) if upstream > 0 else handler[1]
    _seg(out, "registry: outside the handler", "registry", upstream - inside)
    storage = min(reg.storage_per_request or 0.0, inside)
    _seg(out, "storage driver", "storage", storage)
    _seg(out, "registry handler", "registry", inside - storage)


def _one(stage: StageView, client: ClientStage | None, s: Signals) -> Waterfall | None:
    if stage.request_mean is None:
        return None
    segments: list[Segment] = []
    total, observer = stage.request_mean, "proxy"
    if client is not None and client.mean_ms is not None:
        total, observer = client.mean_ms / 1000, "client"
        _seg(segments, "client: connect, queue, network", "generator", total - stage.request_mean)
    response = stage.response_mean or 0.0
    _seg(segments, "proxy (nginx)", "nginx", stage.request_mean - response)
    if stage.response_mean is not None:
        connect = stage.connect_mean or 0.0
        _seg(segments, "upstream connect", "nginx", connect)
        upstream = response - connect
        if stage.upstream == "auth":
            _token(segments, upstream, s.auth)
        else:
            _registry(segments, stage.name, upstream, s.registry)
    return Waterfall(stage.name, stage.count, observer, total, tuple(segments))


def waterfalls(s: Signals, limit: int = 8) -> list[Waterfall]:
    """One waterfall per stage the proxy saw (busiest first), or per tier without a proxy."""
    clients = {c.name: c for c in s.client}
    out: list[Waterfall] = []
    if s.proxy is not None and s.proxy.stages:
        for stage in s.proxy.stages[:limit]:
            w = _one(stage, clients.get(stage.name), s)
            if w is not None:
                out.append(w)
        return out
    if s.auth is not None and s.auth.app_mean is not None:
        segments: list[Segment] = []
        total, observer = _outside(segments, clients.get("token"), s.auth.app_mean)
        _token(segments, s.auth.app_mean, s.auth)
        count = s.auth.rps * s.seconds
        out.append(Waterfall("token", count, observer or "token service", total, tuple(segments)))
    if s.registry is not None:
        for name, (count, mean, _p99) in s.registry.handlers.items():
            if mean is None:
                continue
            segments = []
            total, observer = _outside(segments, clients.get(name), mean)
            _registry(segments, name, mean, s.registry)
            out.append(Waterfall(name, count, observer or "registry", total, tuple(segments)))
    return out[:limit]


def _outside(
    segments: list[Segment], client: ClientStage | None, inside: float
) -> tuple[float, str | None]:
    """Without the proxy's per-request times (Prometheus): the client's total, and all that
    happened outside the tier (network, proxy, waiting for a worker) as one segment."""
    if client is None or client.mean_ms is None:
        return inside, None
    total = client.mean_ms / 1000
    _seg(segments, "client: network, proxy, waiting for a worker", "generator", total - inside)
    return total, "client"

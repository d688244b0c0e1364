"""Prometheus metrics of the token service, per app instance (no global registry).

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
(``keelhaul stack up`` does): every worker writes its samples there and ``/metrics``, served
by any worker, aggregates all of them.
"""

from __future__ import annotations

import functools
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics"]

# Sub-millisecond resolution where the warm path lives, up to the bcrypt-bound cold path.
_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "keelhaul_token_requests",
            "Token requests by outcome and grant type.",
            ["outcome", "grant"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "keelhaul_token_request_seconds",
            "Whole token request, parse to response.",
            ["outcome"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "keelhaul_token_stage_seconds",
            "Time per stage of a token request; authn is split by credential-cache result.",
            ["stage", "cache"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "keelhaul_credential_cache",
            "Credential cache lookups by result (local, redis, miss).",
            ["result"],
            registry=r,
        )
        self.redis_degraded = Gauge(
            "keelhaul_credential_cache_redis_degraded",
            "1 while the shared credential cache (Redis) is unavailable.",
            registry=r,
            multiprocess_mode="max",
        )
        # Per worker (one series per pid under gunicorn): with the capacity below, the
        # diagnosis tells busy workers from free ones.
        self.inflight = Gauge(
            "keelhaul_token_inflight_requests",
            "Token requests being served now, per worker process.",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.capacity = Gauge(
            "keelhaul_token_worker_capacity",
            "Requests one worker can serve at once (sync 1, gthread threads, gevent connections).",
            registry=r,
            multiprocess_mode="liveall",
        )

        # Label children, looked up once: ``labels()`` takes a lock and builds a key per call.
        self.requests_for = functools.cache(self.requests.labels)
        self.request_seconds_for = functools.cache(self.request_seconds.labels)
        self.stage_seconds_for = functools.cache(self.stage_seconds.labels)
        self.cache_for = functools.cache(self.cache.labels)

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            collecting = CollectorRegistry()
            MultiProcessCollector(collecting)  # type: ignore[no-untyped-call]
        else:
            collecting = self.registry
        text = generate_latest(collecting)
        return text + self._hit_ratio(collecting), CONTENT_TYPE_LATEST

    @staticmethod
    def _hit_ratio(registry: CollectorRegistry) -> bytes:
        hits = misses = 0.0
        for family in registry.collect():
            if family.name != "keelhaul_credential_cache":
                continue
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                if sample.labels.get("result") in ("local", "redis"):
                    hits += sample.value
                elif sample.labels.get("result") == "miss":
                    misses += sample.value
        ratio = hits / (hits + misses) if hits + misses else 0.0
        return (
            b"# HELP keelhaul_credential_cache_hit_ratio "
            b"Share of password checks answered by the cache.\n"
            b"# TYPE keelhaul_credential_cache_hit_ratio gauge\n"
            + f"keelhaul_credential_cache_hit_ratio {ratio:.6f}\n".encode()
        )

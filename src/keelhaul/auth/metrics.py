"""Prometheus metrics of the token service, per app instance (no global registry).

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
(``keelhaul stack up`` does): every worker writes its samples there and ``/metrics``, served
by any worker, aggregates all of them.

A token request's counters and histograms (a dozen values) are batched: :meth:`Metrics.add`
and :meth:`Metrics.observe` add to plain numbers, which are written to the (multiprocess,
locked, mmap'd) values at most :data:`FLUSH_SECONDS` later: by the next request after that
time (:meth:`Metrics.settle`), by a scrape of this worker, or by a flusher thread (a
greenlet under gevent) that wakes while something is pending, so an idle worker's last
requests are not left out. In a call graph of the warm path the per-value writes were ~7%
of the workers' samples. The in-flight gauge is written at once: it is a level, read each
second by the diagnosis.
"""

from __future__ import annotations

import bisect
import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["FLUSH_SECONDS", "Metrics"]

FLUSH_SECONDS = 0.05

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
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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
        # Per identity backend: ``backend`` is its configured name, ``kind`` its record in
        # ``authn.registry.KINDS`` ("none": no backend knew the user or the token's issuer).
        self.authn = Counter(
            "keelhaul_authn",
            "Password and identity-token logins by backend and result (cached, match, "
            "wrong_password, no_match, rejected, throttled, error).",
            ["backend", "kind", "result"],
            registry=r,
        )
        self.authn_seconds = Histogram(
            "keelhaul_authn_seconds",
            "Authentication time of a login (lookups, cache, verification) by backend and result.",
            ["backend", "kind", "result"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.backend_events = Counter(
            "keelhaul_authn_backend_events",
            "What happened inside a backend: LDAP search, bind, directory_timeout, "
            "directory_unreachable, directory_error, pool_busy, breaker_open, refused; OIDC "
            "jwks_fetch, jwks_fetch_failed, unknown_kid; htpasswd and robots reload, "
            "reload_failed.",
            ["backend", "kind", "event"],
            registry=r,
        )
        self.backend_up = Gauge(
            "keelhaul_authn_backend_up",
            "1 while a backend is usable, as /healthz says (set by each scrape and health check).",
            ["backend", "kind"],
            registry=r,
            multiprocess_mode="livemin",
        )

        # Label children, looked up once: ``labels()`` takes a lock and builds a key per call.
        self.requests_for = functools.cache(self.requests.labels)
        self.request_seconds_for = functools.cache(self.request_seconds.labels)
        self.stage_seconds_for = functools.cache(self.stage_seconds.labels)
        self.cache_for = functools.cache(self.cache.labels)
        self.authn_for = functools.cache(self.authn.labels)
        self.authn_seconds_for = functools.cache(self.authn_seconds.labels)
        self.backend_events_for = functools.cache(self.backend_events.labels)

        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        self._histograms: dict[Any, list[float]] = {}  # child -> [sum, count per bucket...]
        self._bounds = [*_BUCKETS, float("inf")]
        self._flushed = clock()
        self._pending = threading.Event()
        self._stopped = threading.Event()
        self._flusher: threading.Thread | None = None

    def add(self, child: Any, amount: float = 1.0) -> None:
        """A counter child's increment, batched."""
        with self._lock:
            self._counts[child] = self._counts.get(child, 0.0) + amount
        self._wake()

    def observe(self, child: Any, value: float) -> None:
        """A histogram child's observation, batched (the bucket as ``observe`` picks it)."""
        with self._lock:
            pending = self._histograms.get(child)
            if pending is None:
                pending = self._histograms[child] = [0.0] * (len(self._bounds) + 1)
            pending[0] += value
            pending[1 + bisect.bisect_left(self._bounds, value)] += 1
        self._wake()

    def settle(self) -> None:
        """Write what is batched if the last write is :data:`FLUSH_SECONDS` old."""
        if self._clock() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def _wake(self) -> None:
        if not self._pending.is_set():
            self._pending.set()
            if self._flusher is None and not self._stopped.is_set():
                self._flusher = threading.Thread(
                    target=self._flush_while_pending, name="keelhaul-metrics", daemon=True
                )
                self._flusher.start()

    def _flush_while_pending(self) -> None:
        while not self._stopped.is_set():
            self._pending.wait()
            if self._stopped.wait(FLUSH_SECONDS):
                return
            self.flush()

    def close(self) -> None:
        """Write what is batched and stop the flusher (for tests and embedding)."""
        self._stopped.set()
        self._pending.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            histograms, self._histograms = self._histograms, {}
            self._flushed = self._clock()
            self._pending.clear()
        for child, amount in counts.items():
            child.inc(amount)
        for child, pending in histograms.items():
            # prometheus_client 0.26's Histogram child: one value for the sum, one per bucket
            child._sum.inc(pending[0])
            for index, n in enumerate(pending[1:]):
                if n:
                    child._buckets[index].inc(n)

    def render(self) -> tuple[bytes, str]:
        self.flush()
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

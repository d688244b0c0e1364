"""Brute-force protection that does not lock out real users.

Failed logins are counted per (account, client IP) and per client IP within a window.
Past a threshold, each further failure blocks that key for an exponentially growing delay
(``base_delay * 2**k``, capped at ``max_delay``); while blocked the service answers 429 with
``Retry-After``. Design choices, each for not locking out the people the accounts belong to:

* only failures count: any volume of successful logins (a ``docker compose pull`` of many
  images) is never throttled;
* the per-account key includes the client IP, so an attacker elsewhere cannot lock a user
  out of their own account; the per-IP threshold is higher (NAT gateways);
* while a key is blocked, credentials that the credential cache already vouches for (a
  recent successful bcrypt check of this exact password) still pass: an attacker cannot
  produce a cache hit without the password, a user behind the attacker's NAT can.

Counters live in Redis when ``cache.redis_url`` is set (shared by workers and replicas,
keys are hashes: no account names in Redis), in-process otherwise, and fall back to
in-process while Redis is unavailable. :class:`Policy` is pure; the stores do the I/O.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from keelhaul.auth.settings import ThrottleSettings

__all__ = ["LocalCounters", "Policy", "RedisCounters", "Throttle"]

_PREFIX = "keelhaul:thr:"


@dataclass(frozen=True, slots=True)
class Policy:
    threshold: int
    window: float
    base_delay: float
    max_delay: float

    def delay(self, failures: int) -> float:
        """Seconds to block after the ``failures``-th failure in the window (0: not blocked)."""
        if failures < self.threshold:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** min(failures - self.threshold, 32))


class Counters(Protocol):
    def blocked_for(self, key: str, now: float) -> float: ...

    def fail(self, key: str, now: float, policy: Policy) -> float: ...


class LocalCounters:
    """In-process counters: bounded LRU of key → (count, window start, blocked until)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max = max_keys
        self._data: OrderedDict[str, tuple[int, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def blocked_for(self, key: str, now: float) -> float:
        entry = self._data.get(key)
        return max(0.0, entry[2] - now) if entry else 0.0

    def fail(self, key: str, now: float, policy: Policy) -> float:
        with self._lock:
            count, start, _ = self._data.get(key, (0, now, 0.0))
            if now - start > policy.window:
                count, start = 0, now
            count += 1
            delay = policy.delay(count)
            self._data[key] = (count, start, now + delay)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)
            return delay


class RedisCounters:
    """Shared counters: ``INCR`` + ``EXPIRE`` for the window, a key with a TTL for the block."""

    def __init__(self, client: redis.Redis[bytes]) -> None:
        self._client = client

    def blocked_for(self, key: str, now: float) -> float:
        ttl_ms = int(self._client.pttl(_PREFIX + "b:" + key))
        return ttl_ms / 1000.0 if ttl_ms > 0 else 0.0

    def fail(self, key: str, now: float, policy: Policy) -> float:
        pipe = self._client.pipeline()
        pipe.incr(_PREFIX + "n:" + key)
        pipe.expire(_PREFIX + "n:" + key, max(1, math.ceil(policy.window)), nx=True)
        count = int(pipe.execute()[0])
        delay = policy.delay(count)
        if delay > 0:
            self._client.set(_PREFIX + "b:" + key, b"1", px=max(1, int(delay * 1000)))
        return delay


def _key(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return digest[:32]


class Throttle:
    def __init__(
        self,
        settings: ThrottleSettings,
        *,
        shared: RedisCounters | None = None,
        available: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = settings.enabled
        self._account = Policy(
            settings.max_failures, settings.window, settings.base_delay, settings.max_delay
        )
        self._ip = Policy(
            settings.max_failures_per_ip, settings.window, settings.base_delay, settings.max_delay
        )
        self._local = LocalCounters()
        self._shared = shared
        self._available = available
        self._clock = clock

    def _store(self) -> Counters:
        if self._shared is not None and self._available():
            return self._shared
        return self._local

    def _run(self, op: Callable[[Counters], float]) -> float:
        store = self._store()
        try:
            return op(store)
        except (redis.RedisError, OSError):
            return op(self._local)

    def retry_after(self, account: str, ip: str) -> float:
        """Seconds this (account, ip) must still wait; 0 when it may try."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        ka, ki = _key("a", account, ip), _key("i", ip)
        return self._run(lambda s: max(s.blocked_for(ka, now), s.blocked_for(ki, now)))

    def failed(self, account: str, ip: str) -> float:
        """Count a failure; returns the block it caused (0 when still under the thresholds)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        ka, ki = _key("a", account, ip), _key("i", ip)
        return self._run(lambda s: max(s.fail(ka, now, self._account), s.fail(ki, now, self._ip)))

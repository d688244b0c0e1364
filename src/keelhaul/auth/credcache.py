"""Remember successful password verifications so that repeated logins skip bcrypt.

The field report's lesson done safely:

* the key is ``HMAC-SHA256(server secret, user, password, revision)``: neither the
  password nor a bare hash of it is ever stored, and an entry cannot be derived without
  the secret;
* the revision (see :mod:`keelhaul.auth.authn`: the stored hash for htpasswd, the entry's
  DN and modification stamps for LDAP, the secret's id for a robot) is part of the key, so
  changing or removing a user's password makes every cached entry for the old one
  unreachable as soon as the backend sees the change (not at TTL). Backends answer the
  revision *before* any verification, so a hit costs no bcrypt and no directory bind;
* two levels: an in-process LRU (always) and Redis shared by every gunicorn worker and
  replica (when ``cache.redis_url`` is set), through one connection pool per process;
* Redis failing never fails a login: the cache drops to the local level, logs once,
  reports ``degraded`` in health and metrics, and tries Redis again after
  ``retry_interval`` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import redis

__all__ = ["CredentialCache", "LocalCache", "RedisCache", "credential_key"]

log = logging.getLogger(__name__)

Hit = Literal["local", "redis"]
_KEY_PREFIX = "keelhaul:cred:"


def credential_key(secret: bytes, username: str, password: str, revision: bytes) -> str:
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    for part in (username.encode("utf-8"), password.encode("utf-8"), revision):
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    return mac.hexdigest()


class LocalCache:
    """A bounded LRU of keys with expiry times. Thread- and greenlet-safe."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_entries
        self._clock = clock
        self._data: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            expires = self._data.get(key)
            if expires is None:
                return False
            if expires <= now:
                del self._data[key]
                return False
            self._data.move_to_end(key)
            return True

    def put(self, key: str, ttl: float) -> None:
        with self._lock:
            self._data[key] = self._clock() + ttl
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class RedisCache:
    """Shared level. Every Redis error turns into "unavailable" for ``retry_interval``."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        *,
        retry_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._retry = retry_interval
        self._clock = clock
        self._down_until = 0.0
        self._degraded = False
        self._last_error = ""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pool_size: int,
        timeout: float,
        retry_interval: float,
        password: str | None = None,
    ) -> RedisCache:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            password=password,
            max_connections=pool_size,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        return cls(redis.Redis(connection_pool=pool), retry_interval=retry_interval)

    @property
    def client(self) -> redis.Redis[bytes]:
        return self._client

    @property
    def degraded(self) -> bool:
        return self._degraded

    @property
    def last_error(self) -> str:
        return self._last_error

    def _available(self) -> bool:
        return not self._degraded or self._clock() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self._down_until = self._clock() + self._retry
        self._last_error = type(exc).__name__
        if not self._degraded:
            log.error(
                "credential cache: Redis unavailable (%s); verifying passwords directly, "
                "retrying every %.0fs",
                self._last_error,
                self._retry,
            )
        self._degraded = True

    def _ok(self) -> None:
        if self._degraded:
            log.warning("credential cache: Redis is back; shared caching resumed")
        self._degraded = False
        self._last_error = ""

    def remaining(self, key: str) -> float:
        """Seconds the shared entry has left; 0 when absent or Redis is unavailable."""
        if not self._available():
            return 0.0
        try:
            ttl_ms = self._client.pttl(_KEY_PREFIX + key)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return 0.0
        self._ok()
        return max(0.0, int(ttl_ms) / 1000.0)  # -2 absent, -1 no expiry (never written so)

    def put(self, key: str, ttl: float) -> None:
        if not self._available():
            return
        try:
            self._client.set(_KEY_PREFIX + key, b"1", px=max(1, int(ttl * 1000)))
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._ok()

    def close(self) -> None:
        self._client.close()
        self._client.connection_pool.disconnect()

    def ping(self) -> bool:
        """Health probe; also the way back from degraded outside the request path."""
        try:
            self._client.ping()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return False
        self._ok()
        return True


class CredentialCache:
    def __init__(
        self,
        secret: bytes,
        *,
        ttl: float,
        local: LocalCache,
        shared: RedisCache | None = None,
    ) -> None:
        self._secret = secret
        self._ttl = ttl
        self._local = local
        self._shared = shared

    @property
    def shared(self) -> RedisCache | None:
        return self._shared

    def key(self, username: str, password: str, revision: bytes) -> str:
        return credential_key(self._secret, username, password, revision)

    def lookup(self, key: str) -> Hit | None:
        if self._local.get(key):
            return "local"
        if self._shared is not None:
            left = self._shared.remaining(key)
            if left > 0:
                self._local.put(key, left)
                return "redis"
        return None

    def remember(self, key: str) -> None:
        self._local.put(key, self._ttl)
        if self._shared is not None:
            self._shared.put(key, self._ttl)

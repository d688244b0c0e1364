"""Password verification across the configured backends, behind the credential cache."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import bcrypt

from keelhaul.auth.authn import Backend, StoredUser
from keelhaul.auth.credcache import CredentialCache
from keelhaul.auth.throttle import Throttle
from keelhaul.errors import TooManyRequests, Unauthorized

__all__ = ["Authenticator", "AuthnResult", "CacheResult"]

CacheResult = Literal["local", "redis", "miss", "off"]
_BCRYPT_MAX = 72  # bcrypt reads at most 72 bytes; htpasswd and Go's bcrypt agree


@dataclass(frozen=True, slots=True)
class AuthnResult:
    user: StoredUser
    cache: CacheResult


class Authenticator:
    """Backends in order: the first that knows the user decides (match or wrong password).

    Order of work, cheapest first: the user store lookup, the credential cache (a hit
    succeeds at once, even for a throttled key: only the right password can hit), then the
    brute-force throttle (429 before any bcrypt), then bcrypt. An unknown user costs one
    bcrypt check against a dummy hash of the configured cost, so that response time does
    not tell which accounts exist.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        cache: CredentialCache | None,
        *,
        throttle: Throttle | None = None,
        dummy_cost: int = 10,
    ) -> None:
        self._backends = tuple(backends)
        self._cache = cache
        self._throttle = throttle
        self._dummy = bcrypt.hashpw(b"keelhaul-dummy-password", bcrypt.gensalt(rounds=dummy_cost))

    @property
    def backends(self) -> tuple[Backend, ...]:
        return self._backends

    def find(self, username: str) -> StoredUser | None:
        for backend in self._backends:
            user = backend.lookup(username)
            if user is not None:
                return user
        return None

    def _refuse(self, username: str, client_ip: str) -> Unauthorized:
        if self._throttle is not None:
            self._throttle.failed(username, client_ip)
        return Unauthorized("authentication failed: wrong username or password")

    def authenticate(self, username: str, password: str, client_ip: str = "") -> AuthnResult:
        secret = password.encode("utf-8")[:_BCRYPT_MAX]
        user = self.find(username)
        key = None
        if user is not None and self._cache is not None:
            key = self._cache.key(username, password, user.password_hash)
            hit = self._cache.lookup(key)
            if hit is not None:
                return AuthnResult(user, hit)
        if self._throttle is not None:
            wait = self._throttle.retry_after(username, client_ip)
            if wait > 0:
                raise TooManyRequests(
                    "too many failed logins for this account from this address; retry later",
                    retry_after=math.ceil(wait),
                )
        if user is None:
            bcrypt.checkpw(secret, self._dummy)
            raise self._refuse(username, client_ip)
        if not bcrypt.checkpw(secret, user.password_hash):
            raise self._refuse(username, client_ip)
        if key is None:
            return AuthnResult(user, "off")
        self._cache.remember(key)  # type: ignore[union-attr]
        return AuthnResult(user, "miss")

"""Password verification across the configured backends, behind the credential cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import bcrypt

from keelhaul.auth.authn import Backend, StoredUser
from keelhaul.auth.credcache import CredentialCache
from keelhaul.errors import Unauthorized

__all__ = ["Authenticator", "AuthnResult", "CacheResult"]

CacheResult = Literal["local", "redis", "miss", "off"]
_BCRYPT_MAX = 72  # bcrypt reads at most 72 bytes; htpasswd and Go's bcrypt agree


@dataclass(frozen=True, slots=True)
class AuthnResult:
    user: StoredUser
    cache: CacheResult


class Authenticator:
    """Backends in order: the first that knows the user decides (match or wrong password).

    An unknown user costs one bcrypt check against a dummy hash of the configured cost,
    so that response time does not tell which accounts exist.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        cache: CredentialCache | None,
        *,
        dummy_cost: int = 10,
    ) -> None:
        self._backends = tuple(backends)
        self._cache = cache
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

    def authenticate(self, username: str, password: str) -> AuthnResult:
        secret = password.encode("utf-8")[:_BCRYPT_MAX]
        user = self.find(username)
        if user is None:
            bcrypt.checkpw(secret, self._dummy)
            raise Unauthorized("authentication failed: wrong username or password")
        if self._cache is None:
            if bcrypt.checkpw(secret, user.password_hash):
                return AuthnResult(user, "off")
            raise Unauthorized("authentication failed: wrong username or password")
        key = self._cache.key(username, password, user.password_hash)
        hit = self._cache.lookup(key)
        if hit is not None:
            return AuthnResult(user, hit)
        if not bcrypt.checkpw(secret, user.password_hash):
            raise Unauthorized("authentication failed: wrong username or password")
        self._cache.remember(key)
        return AuthnResult(user, "miss")

"""Build the token service's parts from settings (the only place that knows them all)."""

from __future__ import annotations

from dataclasses import dataclass

from keelhaul.auth.acl import Acl
from keelhaul.auth.authn import Backend
from keelhaul.auth.authn.authenticator import Authenticator
from keelhaul.auth.authn.registry import build_backend
from keelhaul.auth.credcache import CredentialCache, LocalCache, RedisCache
from keelhaul.auth.refresh import RefreshTokens
from keelhaul.auth.service import TokenService
from keelhaul.auth.settings import AuthSettings
from keelhaul.auth.signing import KeyRing
from keelhaul.auth.throttle import RedisCounters, Throttle
from keelhaul.errors import BackendError, ConfigError

__all__ = ["Parts", "build"]


@dataclass
class Parts:
    service: TokenService
    backends: tuple[Backend, ...]
    cache: CredentialCache | None
    shared: RedisCache | None


def _dummy_cost(backends: tuple[Backend, ...]) -> int:
    """The cost of real hashes, so an unknown user costs what a known one does."""
    for backend in backends:
        cost = backend.typical_cost()
        if cost is not None:
            return cost
    return 10


def build(settings: AuthSettings) -> Parts:
    backends: list[Backend] = []
    for index, options in enumerate(settings.users):
        try:
            backends.append(build_backend(options))
        except BackendError as exc:
            raise ConfigError("auth", [f"users.{index} ({options.kind}): {exc}"]) from None
    secret = settings.secret.get_secret_value().encode("utf-8")
    c = settings.cache
    # One Redis pool per process, for the credential cache and the throttle counters alike.
    shared = None
    if c.redis_url is not None:
        shared = RedisCache.from_url(
            c.redis_url.get_secret_value(),
            pool_size=c.redis_pool_size,
            timeout=c.redis_timeout,
            retry_interval=c.retry_interval,
            password=c.redis_password.get_secret_value() if c.redis_password else None,
        )
    cache = None
    if c.enabled:
        cache = CredentialCache(secret, ttl=c.ttl, local=LocalCache(c.max_entries), shared=shared)
    frozen = tuple(backends)
    throttle = Throttle(
        settings.throttle,
        shared=RedisCounters(shared.client) if shared is not None else None,
        available=(lambda: not shared.degraded) if shared is not None else (lambda: True),
    )
    service = TokenService(
        settings,
        authenticator=Authenticator(
            frozen, cache, throttle=throttle, dummy_cost=_dummy_cost(frozen)
        ),
        acl=Acl.compile(settings.acl),
        keys=KeyRing.from_settings(settings.token),
        refresh=RefreshTokens(secret, max_age=settings.token.refresh_expiration),
    )
    return Parts(service=service, backends=frozen, cache=cache, shared=shared)

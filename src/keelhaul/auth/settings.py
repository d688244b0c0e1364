"""Token service settings: one frozen, validated object, loaded once at start.

File: YAML given by ``--config`` or ``KEELHAUL_AUTH_CONFIG``; every key can be overridden
by ``KEELHAUL_AUTH_<SECTION>__<KEY>`` (see :mod:`keelhaul.settings_base`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from keelhaul import settings_base
from keelhaul.auth.aclpatterns import PatternError, pattern_kind
from keelhaul.auth.authn.options import BackendSettings, LegacyUsers, StaticUser
from keelhaul.auth.claims import MIN_EXPIRES_IN
from keelhaul.names import WorkerClass
from keelhaul.settings_base import FrozenModel

__all__ = [
    "AclMatch",
    "AclRule",
    "AuditSettings",
    "AuthSettings",
    "BackendSettings",
    "CacheSettings",
    "KeyPair",
    "LimitSettings",
    "ServerSettings",
    "StaticUser",
    "ThrottleSettings",
    "TokenSettings",
    "load_auth_settings",
    "load_with_overrides",
]

KidFormat = Literal["rfc7638", "libtrust", "distribution-3.0.0"]


PatternSpec = str | dict[str, str]
"""A glob or ``/regex/`` string, or ``{KIND: pattern}`` (see keelhaul.auth.aclpatterns)."""


def _check_pattern(value: PatternSpec | None) -> PatternSpec | None:
    """The kind must exist; keelhaul's own regular expressions must compile."""
    if value is None:
        return None
    try:
        kind, body = pattern_kind(value)
    except PatternError as exc:
        raise ValueError(str(exc)) from None
    if kind.name == "regex" and "${" not in body:
        try:
            re.compile(body)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
    return value


class KeyPair(FrozenModel):
    """A signing key and its certificate. The first configured pair signs; all are published."""

    key: Path
    cert: Path


MAX_REUSE_SECONDS = 10.0
"""The cap on ``token.reuse_seconds``: a reused token is at most this old."""


def reuse_limit(expiration: int) -> float:
    """The longest ``token.reuse_seconds`` for a lifetime: 10 s, a 30th of it, and what
    keeps a reused token's ``expires_in`` at the spec's 60 s floor (a client assumes 60 s
    for anything lower, so a token with less left would be used after it expired)."""
    return max(0.0, min(MAX_REUSE_SECONDS, expiration / 30, expiration - MIN_EXPIRES_IN))


class TokenSettings(FrozenModel):
    issuer: str = Field(min_length=1)
    service: str = Field(
        min_length=1, description="audience; must equal the registry's auth.token.service"
    )
    expiration: int = Field(
        default=300, ge=60, le=86400, description="seconds; the spec's floor is 60"
    )
    algorithm: Literal["ES256", "RS256"] = "ES256"
    kid_format: KidFormat = Field(
        default="rfc7638",
        description="rfc7638 (registry 3.1+, jwks), libtrust (2.8 without x5c), "
        "distribution-3.0.0 (that release's generator-point quirk; warned at start)",
    )
    include_x5c: bool = True
    keys: list[KeyPair] = Field(min_length=1)
    refresh_expiration: int = Field(default=30 * 86400, ge=300)
    reuse_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_REUSE_SECONDS,
        description="hand out a token signed at most this long ago for the same account, "
        "granted access and key instead of signing anew (0 = off); at most 10, "
        "expiration / 30 and expiration - 60, so every client gets at least 29/30 of the "
        "lifetime and never less than 60 s",
    )

    @field_validator("reuse_seconds")
    @classmethod
    def _reuse_within_lifetime(cls, value: float, info: ValidationInfo) -> float:
        expiration = info.data.get("expiration")
        if isinstance(expiration, int) and value > reuse_limit(expiration):
            raise ValueError(
                f"at most {reuse_limit(expiration):g} s with token.expiration {expiration} "
                "(10 s, expiration / 30, and expiration - 60 so a reused token keeps the "
                "spec's 60 s): lower reuse_seconds or raise expiration"
            )
        return value

    @field_validator("kid_format", mode="before")
    @classmethod
    def _renamed_format(cls, value: object) -> object:
        if value == "registry-v3":
            raise ValueError(
                "'registry-v3' is now called 'distribution-3.0.0' (only that release hashed "
                "the curve generator); use rfc7638 for registry 3.1+ and 2.8"
            )
        return value


class AclMatch(FrozenModel):
    account: PatternSpec | None = None
    name: PatternSpec | None = None
    type: PatternSpec | None = None
    service: PatternSpec | None = None
    ip: str | None = None
    labels: dict[str, PatternSpec] = Field(default_factory=dict)

    _p_account = field_validator("account")(_check_pattern)
    _p_name = field_validator("name")(_check_pattern)
    _p_type = field_validator("type")(_check_pattern)
    _p_service = field_validator("service")(_check_pattern)

    @field_validator("ip")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"not an IP network in CIDR form: {value!r}") from None
        return value


class AclRule(FrozenModel):
    match: AclMatch = Field(default_factory=AclMatch)
    actions: list[str] = Field(description="granted actions; ['*'] for all; [] denies explicitly")
    comment: str = ""


class CacheSettings(FrozenModel):
    enabled: bool = True
    ttl: float = Field(
        default=300.0, gt=0, le=86400, description="seconds a verified password is remembered"
    )
    max_entries: int = Field(default=10000, ge=1)
    redis_url: SecretStr | None = None
    redis_password: SecretStr | None = Field(
        default=None, description="Redis AUTH password, kept out of redis_url (e.g. from a Secret)"
    )
    redis_pool_size: int = Field(default=50, ge=1)
    redis_timeout: float = Field(default=0.25, gt=0, le=30)
    retry_interval: float = Field(
        default=5.0, gt=0, le=3600, description="seconds before retrying a failed Redis"
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class ThrottleSettings(FrozenModel):
    enabled: bool = True
    max_failures: int = Field(
        default=10, ge=1, description="failures per account+IP before backoff"
    )
    max_failures_per_ip: int = Field(default=50, ge=1)
    window: float = Field(default=300.0, gt=0)
    base_delay: float = Field(default=1.0, gt=0)
    max_delay: float = Field(default=300.0, gt=0)


class LimitSettings(FrozenModel):
    max_scopes: int = Field(default=32, ge=1)
    max_scope_length: int = Field(default=512, ge=16)
    max_query_bytes: int = Field(
        default=6144,
        ge=256,
        le=7680,
        description="longer query strings get 413 (gunicorn's request line ceiling is 8190)",
    )
    max_headers: int = Field(
        default=64, ge=8, le=8192, description="more request header fields get 431"
    )
    max_header_bytes: int = Field(
        default=16384, ge=1024, le=1 << 20, description="larger request headers in all get 431"
    )
    max_body_bytes: int = Field(default=16384, ge=256)
    max_username_length: int = Field(default=256, ge=1)
    max_password_length: int = Field(default=1024, ge=8)


class ServerSettings(FrozenModel):
    """gunicorn settings; the field report's defaults: gevent, 2 x CPU, 1000 connections, 180 s."""

    bind: str = "127.0.0.1:5001"
    workers: int | None = Field(default=None, ge=1, description="default: 2 x CPU count")
    worker_class: WorkerClass = "gevent"
    worker_connections: int = Field(default=1000, ge=1)
    threads: int = Field(default=1, ge=1)
    timeout: int = Field(default=180, ge=1)
    graceful_timeout: int = Field(default=30, ge=1)
    keepalive: int = Field(default=5, ge=0)
    backlog: int = Field(default=2048, ge=1)
    trusted_proxies: int = Field(default=0, ge=0, description="X-Forwarded-For hops to trust")
    control_socket: Path | None = Field(
        default=None, description="gunicorn control socket (gunicornc); default: none"
    )

    def effective_workers(self, cpu_count: int | None = None) -> int:
        return self.workers if self.workers is not None else 2 * (cpu_count or os.cpu_count() or 1)


class AuditSettings(FrozenModel):
    enabled: bool = True
    path: Path | None = Field(
        default=None, description="JSON lines file; default: the service's stderr"
    )


class AuthSettings(FrozenModel):
    secret: SecretStr = Field(
        description="server secret for the credential cache and refresh tokens"
    )
    token: TokenSettings
    users: list[BackendSettings] = Field(
        default_factory=list, description="identity backends, tried in order (authn/options.py)"
    )
    acl: list[AclRule] = Field(
        default_factory=list, description="first match wins; no match denies"
    )
    cache: CacheSettings = Field(default_factory=CacheSettings)
    throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    realm: str = "keelhaul"

    @field_validator("secret")
    @classmethod
    def _secret_strength(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters; generate one with `keelhaul auth secret`"
            )
        return value

    @field_validator("users", mode="wrap")
    @classmethod
    def _legacy_users(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        """The old mapping form, validated under its own key names, then made a list."""
        if isinstance(value, Mapping):
            value = LegacyUsers.model_validate(value).as_list()
        return handler(value)

    @field_validator("users")
    @classmethod
    def _unique_names(cls, value: list[BackendSettings]) -> list[BackendSettings]:
        names = [b.name or b.kind for b in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two backends are named {name!r}; give each a distinct name")
        return value


def load_auth_settings(
    path: Path | None = None,
    *,
    data: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AuthSettings:
    env = os.environ if environ is None else environ
    if path is None and data is None:
        configured = env.get("KEELHAUL_AUTH_CONFIG")
        if configured:
            path = Path(configured)
    return settings_base.load(AuthSettings, "auth", path=path, data=data, environ=env)


def load_with_overrides(path: Path | None, overrides: Mapping[str, object]) -> AuthSettings:
    """Config file < environment < command-line flags (``overrides`` are ``server.*`` keys)."""
    settings = load_auth_settings(path)
    clean = {k: v for k, v in overrides.items() if v is not None}
    if not clean:
        return settings
    server = settings.server.model_dump() | clean
    return load_auth_settings(data={**settings.model_dump(), "server": server}, environ={})

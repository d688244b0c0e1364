"""The stack's knobs: one frozen object, from CLI flags over ``KEELHAUL_STACK_*``.

The same object drives the local stack (``keelhaul stack up``) and the deployment
artifacts (``keelhaul stack render``); every knob is recorded in ``stack.json`` under
``settings`` so that a benchmark result can always say which stack produced it. Several
knobs exist to reproduce the field report's wrong shapes on purpose (too few proxy
workers, a blocking worker class, no credential cache); ``keelhaul stack doctor`` flags
each of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from keelhaul.errors import ConfigError
from keelhaul.names import COMPONENTS, ComponentName, WorkerClass
from keelhaul.settings_base import FrozenModel, env_overrides, validation_problems
from keelhaul.stack.redisurl import ExternalRedis, parse_external_redis

__all__ = [
    "COMPONENTS",
    "MONITORING_COMPONENTS",
    "ComponentName",
    "StackSettings",
    "load_stack_settings",
    "wanted_components",
]

MONITORING_COMPONENTS: tuple[str, ...] = (
    "node_exporter",
    "process_exporter",
    "nginx_exporter",
    "redis_exporter",
    "prometheus",
)
"""Started after the tiers they watch, Prometheus last (it checks that every target is up)."""


DEFAULT_PROXY_CONNECTIONS = 4096


class StackSettings(FrozenModel):
    """How the stack is built; the defaults are the right shape for production."""

    auth_workers: int | None = Field(
        default=None, ge=1, le=256, description="token service workers; default: its own (2 x CPU)"
    )
    auth_worker_class: WorkerClass | None = Field(
        default=None, description="gevent, sync or gthread; default: the token service's (gevent)"
    )
    credential_cache: bool = Field(default=True, description="remember verified passwords")
    bcrypt_cost: int = Field(default=10, ge=4, le=16, description="htpasswd bcrypt cost")
    redis: bool = Field(default=True, description="false: no Redis at all, in-memory caches")
    redis_url: str | None = Field(
        default=None,
        description="redis://[:PASSWORD@]HOST:PORT/DB: use this Redis (one the stack does not "
        "run) for the registry's blob cache and the token service's cache and throttle; "
        "default: the stack's own redis-server",
    )
    proxy_workers: int | None = Field(
        default=None, ge=1, le=1024, description="nginx worker_processes; default: auto (1 per CPU)"
    )
    proxy_connections: int = Field(
        default=DEFAULT_PROXY_CONNECTIONS,
        ge=16,
        le=1_000_000,
        description="nginx worker_connections (each proxied request holds two)",
    )
    tls: bool = Field(default=False, description="serve the entry point over https (own CA)")
    monitoring: bool = Field(
        default=False, description="also run Prometheus and its exporters (1 s scrapes)"
    )
    ports: dict[ComponentName, int] = Field(
        default_factory=dict, description="force a port per component; default: free ports"
    )
    registry_binary: str = Field(default="docker-registry", min_length=1)
    redis_binary: str = Field(default="redis-server", min_length=1)
    nginx_binary: str = Field(default="nginx", min_length=1)
    start_timeout: float = Field(default=30.0, gt=0, le=600, description="seconds per component")
    stop_timeout: float = Field(default=10.0, gt=0, le=600, description="seconds before SIGKILL")

    @field_validator("ports")
    @classmethod
    def _valid_ports(cls, value: dict[ComponentName, int]) -> dict[ComponentName, int]:
        for name, port in value.items():
            if not 1 <= port <= 65535:
                raise ValueError(f"{name}: {port} is not a TCP port (1..65535)")
        if len(set(value.values())) != len(value):
            raise ValueError("two components cannot share a port")
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _valid_redis_url(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # empty (e.g. KEELHAUL_STACK_REDIS_URL= in tuned.env): the own Redis
        if isinstance(value, str):
            parse_external_redis(value)  # its ValueError names what to write, never the URL
            return value.strip()
        return value

    @model_validator(mode="after")
    def _redis_url_needs_redis(self) -> StackSettings:
        if self.redis_url is not None and not self.redis:
            raise ValueError("redis_url: cannot be used with redis off (--no-redis); drop one")
        return self

    @property
    def external_redis(self) -> ExternalRedis | None:
        """The Redis the stack uses but does not run (``redis_url``), if any."""
        return parse_external_redis(self.redis_url) if self.redis_url else None

    @property
    def external_redis_shown(self) -> str:
        """``redis_url`` for people (its password as ``***``); "its own Redis" without."""
        external = self.external_redis
        return external.redacted if external is not None else "its own Redis"

    @property
    def own_redis(self) -> bool:
        """The stack runs its own ``redis-server``."""
        return self.redis and self.redis_url is None

    def recorded(self) -> dict[str, Any]:
        """The knobs as written to ``stack.json``."""
        return self.model_dump(mode="json")


def wanted_components(settings: StackSettings) -> tuple[str, ...]:
    """The port names this stack has: no Redis (nor its exporter) without Redis of its own
    (none at all, or an external ``redis_url``), no monitoring without ``--monitoring``."""
    skipped = set() if settings.monitoring else set(MONITORING_COMPONENTS)
    if not settings.own_redis:
        skipped |= {"redis", "redis_exporter"}
    return tuple(c for c in COMPONENTS if c not in skipped)


def load_stack_settings(
    cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> StackSettings:
    """CLI values (only those given) over ``KEELHAUL_STACK_*`` variables over defaults."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = env_overrides("KEELHAUL_STACK_", env)
    for key, value in (cli or {}).items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    try:
        return StackSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("stack", validation_problems(exc)) from None

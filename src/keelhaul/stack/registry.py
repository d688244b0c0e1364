"""The registry's ``config.yml`` (distribution 2.8 schema), rendered from a plan. Pure.

Secrets stay out of the deployment artifacts: there ``http.secret`` comes from
``REGISTRY_HTTP_SECRET`` (a Secret), and object-store credentials from the environment or
the pod's identity (see :mod:`.storage`).
"""

from __future__ import annotations

from typing import Any

import yaml

from keelhaul.stack.authconf import TOKEN_ALGORITHM
from keelhaul.stack.plan import REDIS_DB_REGISTRY, StackPlan
from keelhaul.stack.storage import render_storage

__all__ = ["REDIS_TIMEOUT", "registry_argv", "registry_yaml", "render_registry_config"]

# Loopback Redis answers in well under a millisecond; a stuck one must not stall pulls.
REDIS_TIMEOUT = "250ms"


def render_registry_config(plan: StackPlan, *, http_secret: str | None) -> dict[str, Any]:
    """``http_secret`` None: it comes from ``REGISTRY_HTTP_SECRET`` at run time."""
    storage: dict[str, Any] = {
        **render_storage(plan.storage, plan.files.registry_data),
        "delete": {"enabled": True},
        "cache": {"blobdescriptor": "redis" if plan.settings.redis else "inmemory"},
    }
    http: dict[str, Any] = {"addr": plan.bind("registry")}
    if http_secret is not None:
        http["secret"] = http_secret
    if plan.public_url is not None:
        # generated URLs (upload Locations) name the entry point, whoever asked
        http["host"] = plan.public_url
        http["draintimeout"] = "60s"
    http["headers"] = {"X-Content-Type-Options": ["nosniff"]}
    http["debug"] = {
        "addr": plan.bind("registry_debug"),
        "prometheus": {"enabled": True, "path": "/metrics"},
    }
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {
            "level": "info",
            # people read the local stack's log; log collectors read the containers'
            "formatter": "text" if plan.target == "local" else "json",
            "fields": {"service": "registry"},
        },
        "storage": storage,
        "http": http,
        "auth": {
            "token": {
                "realm": plan.realm,
                "service": plan.service,
                "issuer": plan.issuer,
                "rootcertbundle": plan.files.bundle,
                # 3.x: accept only what keelhaul signs with, never its default list; 2.8
                # ignores the key
                "signingalgorithms": [TOKEN_ALGORITHM],
            }
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if plan.settings.redis:
        config["redis"] = {
            **_redis_place(plan),
            "dialtimeout": REDIS_TIMEOUT,
            "readtimeout": REDIS_TIMEOUT,
            "writetimeout": REDIS_TIMEOUT,
            "pool": {"maxidle": 16, "maxactive": 64, "idletimeout": "300s"},
        }
    return config


def _redis_place(plan: StackPlan) -> dict[str, Any]:
    """``addr`` and ``db``: the stack's own Redis, or the external ``redis_url`` (whose
    password a deployment passes as ``REGISTRY_REDIS_PASSWORD``, never in the file)."""
    external = plan.settings.external_redis
    if external is None:
        return {"addr": plan.peer("redis"), "db": REDIS_DB_REGISTRY}
    place: dict[str, Any] = {"addr": external.addr, "db": external.db}
    if external.password is not None and plan.target == "local":
        place["password"] = external.password
    return place


def registry_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def registry_argv(binary: str, plan: StackPlan) -> list[str]:
    return [binary, "serve", plan.files.registry_config]

"""The registry's ``config.yml`` (distribution 2.8 schema), rendered from a plan. Pure."""

from __future__ import annotations

from typing import Any

import yaml

from keelhaul.stack.plan import REDIS_DB_REGISTRY, StackPlan

__all__ = ["registry_argv", "registry_yaml", "render_registry_config"]

# Loopback Redis answers in well under a millisecond; a stuck one must not stall pulls.
REDIS_TIMEOUT = "250ms"


def render_registry_config(plan: StackPlan, *, http_secret: str) -> dict[str, Any]:
    layout = plan.layout
    storage: dict[str, Any] = {
        "filesystem": {"rootdirectory": str(layout.data_dir)},
        "delete": {"enabled": True},
        "cache": {"blobdescriptor": "redis" if plan.settings.redis else "inmemory"},
    }
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": storage,
        "http": {
            "addr": plan.addr("registry"),
            "secret": http_secret,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
            "debug": {
                "addr": plan.addr("registry_debug"),
                "prometheus": {"enabled": True, "path": "/metrics"},
            },
        },
        "auth": {
            "token": {
                "realm": plan.token_url,
                "service": plan.service,
                "issuer": plan.issuer,
                "rootcertbundle": str(layout.bundle),
            }
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if plan.settings.redis:
        config["redis"] = {
            "addr": plan.addr("redis"),
            "db": REDIS_DB_REGISTRY,
            "dialtimeout": REDIS_TIMEOUT,
            "readtimeout": REDIS_TIMEOUT,
            "writetimeout": REDIS_TIMEOUT,
            "pool": {"maxidle": 16, "maxactive": 64, "idletimeout": "300s"},
        }
    return config


def registry_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def registry_argv(binary: str, plan: StackPlan) -> list[str]:
    return [binary, "serve", str(plan.layout.registry_config)]

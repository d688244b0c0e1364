"""The processes of a stack, in start order, as plain data. Pure."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keelhaul.stack.authconf import auth_argv
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.nginx import nginx_argv
from keelhaul.stack.plan import StackPlan
from keelhaul.stack.registry import registry_argv

__all__ = ["PACKAGES", "ComponentSpec", "component_specs", "redis_argv"]

PACKAGES: Mapping[str, str] = {
    "docker-registry": "docker-registry",
    "redis-server": "redis-server",
    "skopeo": "skopeo",
    "nginx": "nginx-light",
}
"""Binary name -> the Debian package that installs it."""


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    argv: tuple[str, ...]
    log: Path
    url: str
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables added to the environment (from which ``KEELHAUL_*`` is always removed)."""
    match: tuple[str, ...] = ()
    """Substrings of ``/proc/<pid>/cmdline`` that prove a pid is still this component."""
    group_match: tuple[str, ...] = ()
    """The same for its children, when their titles differ from the leader's."""
    config: Path | None = None


def redis_argv(binary: str, plan: StackPlan, directory: str) -> list[str]:
    """No persistence at all; the LRU limit keeps a long benchmark from eating the host."""
    return [
        binary,
        "--bind", plan.bind("redis").rpartition(":")[0],
        "--port", str(plan.ports["redis"]),
        "--protected-mode", "yes",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", directory,
        "--maxmemory", "256mb",
        "--maxmemory-policy", "allkeys-lru",
    ]  # fmt: skip


def component_specs(
    plan: StackPlan,
    layout: StackLayout,
    binaries: Mapping[str, str],
    *,
    python: str = sys.executable,
) -> list[ComponentSpec]:
    """Start order: Redis (when enabled) -> token service -> registry -> nginx."""
    specs: list[ComponentSpec] = []
    if plan.settings.redis:
        specs.append(
            ComponentSpec(
                name="redis",
                argv=tuple(redis_argv(binaries["redis-server"], plan, str(layout.run_dir))),
                log=layout.log("redis"),
                url=plan.url("redis"),
                # redis-server rewrites its title to "redis-server 127.0.0.1:<port>"
                match=("redis-server", str(plan.ports["redis"])),
            )
        )
    specs.append(
        ComponentSpec(
            name="auth",
            argv=tuple(auth_argv(plan, python)),
            log=layout.log("auth"),
            url=plan.url("auth"),
            env={
                "PROMETHEUS_MULTIPROC_DIR": str(layout.auth_metrics_dir),
                "PYTHONUNBUFFERED": "1",
            },
            match=("keelhaul", str(layout.auth_config)),
            config=layout.auth_config,
        )
    )
    specs.append(
        ComponentSpec(
            name="registry",
            argv=tuple(registry_argv(binaries["docker-registry"], plan)),
            log=layout.log("registry"),
            url=plan.url("registry"),
            match=(str(layout.registry_config),),
            config=layout.registry_config,
        )
    )
    specs.append(
        ComponentSpec(
            name="nginx",
            argv=tuple(nginx_argv(binaries["nginx"], plan, f"{layout.nginx_dir}/")),
            log=layout.log("nginx"),
            url=plan.url("nginx"),
            # the master's title: "nginx: master process /usr/sbin/nginx -p ... -c <conf> ..."
            match=("nginx", str(layout.nginx_config)),
            # its workers: "nginx: worker process"; they outlive a killed master for good
            group_match=("nginx: ",),
            config=layout.nginx_config,
        )
    )
    return specs

"""The processes of a stack, in start order, as plain data. Pure."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keelhaul.stack.authconf import auth_argv
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.monitoring import EXPORTERS, PROMETHEUS, PROMETHEUS_BINARY, prometheus_args
from keelhaul.stack.nginx import nginx_argv
from keelhaul.stack.plan import StackPlan
from keelhaul.stack.redisconf import redis_argv
from keelhaul.stack.registry import registry_argv
from keelhaul.stack.settings import StackSettings, wanted_components

__all__ = ["PACKAGES", "ComponentSpec", "component_specs", "monitoring_binaries"]

PACKAGES: Mapping[str, str] = {
    "docker-registry": "docker-registry",
    "redis-server": "redis-server",
    "skopeo": "skopeo",
    "nginx": "nginx-light",
    PROMETHEUS_BINARY[0]: PROMETHEUS_BINARY[1],
    **{exporter.binary: exporter.package for exporter in EXPORTERS},
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


def component_specs(
    plan: StackPlan,
    layout: StackLayout,
    binaries: Mapping[str, str],
    *,
    python: str = sys.executable,
) -> list[ComponentSpec]:
    """Start order: Redis (when enabled) -> token service -> registry -> nginx
    [-> the exporters -> Prometheus, with ``--monitoring``]."""
    specs: list[ComponentSpec] = []
    if plan.settings.own_redis:
        specs.append(
            ComponentSpec(
                name="redis",
                argv=tuple(
                    redis_argv(binaries["redis-server"], plan, directory=str(layout.run_dir))
                ),
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
    if plan.settings.monitoring:
        specs += _monitoring_specs(plan, layout, binaries)
    return specs


def monitoring_binaries(settings: StackSettings) -> list[str]:
    """The Debian binaries ``--monitoring`` runs (looked up in ``PATH``)."""
    if not settings.monitoring:
        return []
    present = wanted_components(settings)
    return [*(e.binary for e in EXPORTERS if e.component in present), PROMETHEUS_BINARY[0]]


def _monitoring_specs(
    plan: StackPlan, layout: StackLayout, binaries: Mapping[str, str]
) -> list[ComponentSpec]:
    specs = []
    for exporter in EXPORTERS:
        if exporter.component not in plan.ports:
            continue
        binary = binaries[exporter.binary]
        specs.append(
            ComponentSpec(
                name=exporter.component,
                argv=(binary, *exporter.args(plan)),
                log=layout.log(exporter.component),
                url=plan.url(exporter.component),
                match=(binary, plan.bind(exporter.component)),
                config=Path(exporter.config(plan)) if exporter.config is not None else None,
            )
        )
    binary = binaries[PROMETHEUS_BINARY[0]]
    specs.append(
        ComponentSpec(
            name=PROMETHEUS,
            argv=(binary, *prometheus_args(plan)),
            log=layout.log(PROMETHEUS),
            url=plan.url(PROMETHEUS),
            match=(binary, str(layout.prometheus_config)),
            config=layout.prometheus_config,
        )
    )
    return specs

"""What to watch in one stack: processes, ports, URLs and files, from its ``stack.json``. Pure.

Only *where* things are is taken from the stack's state (pids, addresses, log paths). How the
stack was built (its knobs: workers, worker class, cache, bcrypt cost, proxy connections) is
never read: every verdict comes from what the collectors measure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from keelhaul.stack.layout import StackLayout
from keelhaul.stack.nginx import STATUS_PATH
from keelhaul.stack.state import StackState

__all__ = [
    "SERVER_TIERS",
    "TIER_LABELS",
    "Targets",
    "available_cores",
    "stack_monitoring",
    "targets_from_state",
]

SERVER_TIERS: tuple[str, ...] = ("nginx", "auth", "registry", "redis")
"""Tiers whose processes the stack records (leaders; their children are found live)."""

TIER_LABELS = {
    "generator": "load generator",
    "nginx": "proxy (nginx)",
    "auth": "token service",
    "registry": "registry",
    "redis": "Redis",
    "diagnosis": "diagnosis (this tool)",
    "other": "everything else on the host",
}


@dataclass(frozen=True)
class Targets:
    stack_dir: Path
    leaders: dict[str, int]
    """Tier -> the pid the stack started (gunicorn and nginx masters, registry, redis)."""
    ports: dict[str, int]
    auth_url: str | None = None
    registry_debug_url: str | None = None
    nginx_status_url: str | None = None
    redis_url: str | None = None
    redis_external: str | None = None
    """The Redis the stack uses but does not run (its URL, password as ``***``): read
    through what it answers only, its process is not this host's to see."""
    access_log: Path | None = None
    logs: dict[str, Path] = field(default_factory=dict)
    """Tier -> its own log (nginx's error log, gunicorn's, the registry's)."""
    auth_metrics_dir: Path | None = None
    load_pids: tuple[int, ...] = ()
    cores: int = 1

    @property
    def entry_ports(self) -> tuple[int, ...]:
        """Ports a load generator talks to (the proxy, and the tiers behind it directly)."""
        return tuple(self.ports[c] for c in ("nginx", "auth", "registry") if c in self.ports)


def available_cores() -> int:
    """CPUs this process may run on (its affinity), which is what the stack shares too."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _base(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def targets_from_state(
    state: StackState, *, load_pids: Sequence[int] = (), cores: int | None = None
) -> Targets:
    layout = StackLayout.at(Path(state.dir))
    leaders = {tier: pid for tier, pid in state.pids.items() if tier in SERVER_TIERS}
    logs = {tier: Path(path) for tier, path in state.logs.items() if tier in SERVER_TIERS}
    status = state.urls.get("nginx_status")
    return Targets(
        stack_dir=layout.root,
        leaders=leaders,
        ports=dict(state.ports),
        auth_url=_base(state.urls.get("auth") or state.token_url),
        registry_debug_url=_base(state.urls.get("registry_debug")),
        nginx_status_url=f"{_base(status)}{STATUS_PATH}" if status else None,
        redis_url=state.redis_url,
        redis_external=state.public()["redis_url"] if state.external_redis else None,
        access_log=layout.access_log if "nginx" in leaders else None,
        logs=logs,
        auth_metrics_dir=layout.auth_metrics_dir,
        load_pids=tuple(load_pids),
        cores=cores if cores is not None else available_cores(),
    )


def stack_monitoring(stack_dir: Path) -> tuple[str | None, tuple[int, ...]]:
    """From ``stack.json`` (when there is one): the Prometheus base URL that ``stack up
    --monitoring`` recorded (top-level ``prometheus``), and the ports a load generator
    talks to. Read as plain JSON: the field is optional and newer than the state model."""
    path = stack_dir.expanduser().absolute() / "stack.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, ()
    if not isinstance(doc, dict):
        return None, ()
    url = doc.get("prometheus")
    raw = doc.get("ports")
    ports: dict[str, Any] = raw if isinstance(raw, dict) else {}
    entry = tuple(
        int(ports[c]) for c in ("nginx", "auth", "registry") if isinstance(ports.get(c), int)
    )
    return (url if isinstance(url, str) and url else None), entry

"""The product's small vocabularies, with no dependency: the CLI's choices derive from them.

``keelhaul --help`` must not import pydantic or the stack, yet its choices must be the ones
the settings validate; both read these literals (``typing.get_args``), so they cannot drift.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["COMPONENTS", "WORKER_CLASSES", "ComponentName", "WorkerClass"]

WorkerClass = Literal["gevent", "sync", "gthread"]
"""gunicorn worker classes the token service runs."""

ComponentName = Literal[
    "redis",
    "auth",
    "registry",
    "registry_debug",
    "nginx",
    "nginx_status",
    "node_exporter",
    "process_exporter",
    "nginx_exporter",
    "redis_exporter",
    "prometheus",
]
"""Names of the ports a stack listens on: ``registry_debug`` is the registry's debug server,
``nginx`` the entry point every client uses, ``nginx_status`` its loopback-only status page;
the last five only with ``--monitoring``."""

WORKER_CLASSES: tuple[str, ...] = get_args(WorkerClass)
COMPONENTS: tuple[str, ...] = get_args(ComponentName)

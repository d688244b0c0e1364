"""Run the token service under gunicorn (gevent workers by default), configured from settings.

Defaults are the field report's hard-won ones: ``-k gevent``, workers = 2 x CPU count,
``--worker-connections 1000``, ``-t 180``. Each can be set in the config file
(``server.*``), the environment (``KEELHAUL_AUTH_SERVER__WORKERS``) or a flag; the
effective values are logged when the master starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from keelhaul.auth.settings import (
    AuthSettings,
    LimitSettings,
    ServerSettings,
    load_with_overrides,
)

__all__ = ["WORKER_CLASSES", "gunicorn_options", "serve"]

WORKER_CLASSES: dict[str, str] = {
    "gevent": "keelhaul.auth.workers.JsonGeventWorker",
    "sync": "keelhaul.auth.workers.JsonSyncWorker",
    "gthread": "keelhaul.auth.workers.JsonThreadWorker",
}
"""``server.worker_class`` -> gunicorn's worker of that kind, answering its refusals in JSON."""

_HEADER_FIELD_HEADROOM = 1024
"""gunicorn's per-field limit sits this far above the app's total ``max_header_bytes``."""


def gunicorn_options(
    server: ServerSettings, limits: LimitSettings | None = None, cpu_count: int | None = None
) -> dict[str, Any]:
    """Pure: server (and request limit) settings → gunicorn settings."""
    limits = limits if limits is not None else LimitSettings()
    return {
        "bind": [server.bind],
        "workers": server.effective_workers(cpu_count),
        "worker_class": WORKER_CLASSES[server.worker_class],
        "worker_connections": server.worker_connections,
        "threads": server.threads,
        "timeout": server.timeout,
        "graceful_timeout": server.graceful_timeout,
        "keepalive": server.keepalive,
        "backlog": server.backlog,
        "proc_name": "keelhaul-auth",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "preload_app": False,
        # gunicorn's own ceilings, above the app's limits (LimitSettings), so that the app
        # answers first with its Docker-style 413/431; the request line is at gunicorn's
        # maximum (8190, above max_query_bytes' 7680). Beyond them the workers above still
        # answer in JSON (keelhaul.auth.workers).
        "limit_request_line": 8190,
        "limit_request_fields": 4 * limits.max_headers,
        "limit_request_field_size": limits.max_header_bytes + _HEADER_FIELD_HEADROOM,
        "control_socket_disable": server.control_socket is None,
        **({"control_socket": str(server.control_socket)} if server.control_socket else {}),
    }


def _clear_multiprocess_dir() -> None:
    """Metric files of a previous run (a restarted container keeps them) would be summed in."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))


def _child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, path: Path | None, overrides: Mapping[str, Any]) -> None:
        self._path = path
        self._overrides = dict(overrides)
        self.settings = load_with_overrides(path, overrides)
        super().__init__()

    def load_config(self) -> None:
        # Also called on SIGHUP: re-read the file so a reload picks up changes.
        self.settings = load_with_overrides(self._path, self._overrides)
        options = gunicorn_options(self.settings.server, self.settings.limits)
        for key, value in options.items():
            self.cfg.set(key, value)
        self.cfg.set("child_exit", _child_exit)
        shown = {
            k: options[k] for k in ("bind", "workers", "worker_connections", "threads", "timeout")
        }
        shown["worker_class"] = self.settings.server.worker_class

        def when_ready(server: Any) -> None:
            server.log.info("keelhaul auth: effective server settings %s", shown)

        self.cfg.set("when_ready", when_ready)

    def load(self) -> Any:
        from keelhaul.auth.app import create_app

        return create_app(self.settings)  # the gevent worker yields per request itself


def serve(settings: AuthSettings, path: Path | None, overrides: Mapping[str, Any]) -> None:
    """Validate everything (settings, keys, user stores) before forking, then run gunicorn.

    ``settings`` were loaded by the entry point, which has already monkey-patched for
    gevent if that is the worker class (before ssl, redis or gunicorn were imported).
    """
    from keelhaul.auth.wiring import build

    parts = build(settings)  # fail fast, in the master, with the config error's message
    for warning in parts.service.keys.warnings:
        print(f"keelhaul auth: warning: {warning}", file=sys.stderr, flush=True)
    _clear_multiprocess_dir()
    _Application(path, overrides).run()

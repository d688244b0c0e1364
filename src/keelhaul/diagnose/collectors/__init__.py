"""One collector per tier; each reads its tier once per tick and returns a ``Reading``.

=====================  ==============================================================
module                 reads
=====================  ==============================================================
``procs``              psutil: CPU, busiest thread, RSS, run-queue wait, cgroup
                       throttling of every stack process and of the load generator
``listen_queue``       ``/proc/net/tcp``: accept backlog of each listening port
``nginx_log``          the proxy's JSON access log, tailed: per stage, request time
                       versus upstream connect/header/response times, 499/502/504
``stub_status``        nginx's connections (active, reading, writing, dropped)
``log_events``         nginx's error log, gunicorn's log, the registry's log: counted
                       lines (worker_connections exhausted, WORKER TIMEOUT, ...)
``registry_metrics``   the registry's Prometheus metrics on its debug address
``auth_metrics``       the token service's metrics (multiprocess files, or /metrics)
``redis_info``         ``INFO``, ``SLOWLOG``, ``LATENCY LATEST`` and a timed ``PING``
=====================  ==============================================================

A collector never raises for its tier being down or slow: it returns a ``Reading`` with
``error`` set, and the sampler carries on with the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from keelhaul.diagnose.model import Reading

__all__ = ["Collector", "Unreadable", "get_text"]


class Collector(Protocol):
    name: str

    def collect(self) -> Reading: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Why a tier's page could not be read this tick (for ``Reading.error``)."""

    error: str


def get_text(client: httpx.Client, url: str) -> str | Unreadable:
    """The body of ``GET url`` when it answers 200; else what went wrong, in one line."""
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return Unreadable(f"GET {url}: {type(exc).__name__}")
    if response.status_code != 200:
        return Unreadable(f"GET {url}: HTTP {response.status_code}")
    return response.text

"""nginx's ``stub_status``: connections now, and accepted versus handled ones.

``accepts - handled`` grows only when nginx had to drop a connection it accepted because a
worker ran out of ``worker_connections``: measured, not read from the config.
"""

from __future__ import annotations

import re

import httpx

from keelhaul.diagnose.collectors import Unreadable, get_text
from keelhaul.diagnose.model import Reading

__all__ = ["StubStatusCollector", "parse_stub_status"]

_ACTIVE = re.compile(r"Active connections:\s*(\d+)")
_TOTALS = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", re.MULTILINE)
_RWW = re.compile(r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)")


def parse_stub_status(text: str) -> Reading:
    """Pure: the status page → gauges (active, reading, writing, waiting) and counters."""
    active, totals, rww = _ACTIVE.search(text), _TOTALS.search(text), _RWW.search(text)
    if active is None or totals is None or rww is None:
        return Reading(error="not an nginx stub_status page")
    accepts, handled, requests = (float(x) for x in totals.groups())
    return Reading(
        gauges={
            "active": float(active[1]),
            "reading": float(rww[1]),
            "writing": float(rww[2]),
            "waiting": float(rww[3]),
        },
        counters={
            "accepts": accepts,
            "handled": handled,
            "requests": requests,
            "dropped": accepts - handled,
        },
    )


class StubStatusCollector:
    name = "stub_status"

    def __init__(self, url: str, timeout: float = 0.5) -> None:
        self._url = url
        self._client = httpx.Client(timeout=timeout, trust_env=False)

    def collect(self) -> Reading:
        text = get_text(self._client, self._url)
        if isinstance(text, Unreadable):
            return Reading(error=text.error)
        return parse_stub_status(text)

    def close(self) -> None:
        self._client.close()

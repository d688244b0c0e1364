"""Lines in the tiers' own logs that are evidence by themselves, counted as they appear.

=================  =========================================  ============================
tier (its log)     pattern                                    counter
=================  =========================================  ============================
nginx (error log)  ``worker_connections are not enough``      ``nginx.conn_exhausted``
                   ``upstream timed out``                     ``nginx.upstream_timeout``
                   ``connect() failed`` / ``no live upstreams``  ``nginx.upstream_failed``
                   ``upstream prematurely closed``            ``nginx.upstream_closed``
auth (gunicorn)    ``WORKER TIMEOUT``                         ``auth.worker_timeout``
                   ``was sent SIGKILL`` / ``SIGKILL!``        ``auth.worker_killed``
                   ``Booting worker``                         ``auth.worker_boot``
                   ``Error handling request``                 ``auth.request_error``
registry           ``level=error`` (or ``"level":"error"``)   ``registry.error``
                   ``redis`` in an error line                 ``registry.redis_error``
=================  =========================================  ============================

The first lines that matched (a few per tick) are kept as notes, to be quoted as evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from keelhaul.diagnose.collectors.tail import LogTail
from keelhaul.diagnose.model import Reading

__all__ = ["PATTERNS", "LogEventsCollector", "classify"]

PATTERNS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "nginx": (
        ("worker_connections are not enough", "conn_exhausted"),
        ("upstream timed out", "upstream_timeout"),
        ("connect() failed", "upstream_failed"),
        ("no live upstreams", "upstream_failed"),
        ("upstream prematurely closed", "upstream_closed"),
    ),
    "auth": (
        ("WORKER TIMEOUT", "worker_timeout"),
        ("was sent SIGKILL", "worker_killed"),
        ("SIGKILL!", "worker_killed"),
        ("Booting worker", "worker_boot"),
        ("Error handling request", "request_error"),
    ),
    "registry": (
        ("level=error", "error"),
        ('"level":"error"', "error"),
    ),
}
NOTES_PER_TICK = 3
MAX_NOTE = 300


def classify(tier: str, line: str) -> list[str]:
    """Pure: the counters one log line adds to (possibly none)."""
    found: list[str] = []
    for needle, counter in PATTERNS.get(tier, ()):
        if needle in line and counter not in found:
            found.append(counter)
    if tier == "registry" and "error" in found and "redis" in line.lower():
        found.append("redis_error")
    return found


class LogEventsCollector:
    name = "logs"

    def __init__(self, logs: Mapping[str, Path]) -> None:
        self._tails = {tier: LogTail(path) for tier, path in logs.items() if tier in PATTERNS}
        self._counts: dict[str, float] = {
            f"{tier}.{counter}": 0.0 for tier in self._tails for _, counter in PATTERNS[tier]
        }

    def collect(self) -> Reading:
        notes: list[str] = []
        errors: list[str] = []
        for tier, tail in self._tails.items():
            try:
                lines = tail.read_lines()
            except OSError as exc:
                errors.append(f"{tail.path}: {exc.strerror}")
                continue
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                hits = classify(tier, line)
                for counter in hits:
                    key = f"{tier}.{counter}"
                    self._counts[key] = self._counts.get(key, 0.0) + 1
                if hits and len(notes) < NOTES_PER_TICK:
                    notes.append(f"{tier}: {line.strip()[:MAX_NOTE]}")
        if errors and len(errors) == len(self._tails):
            return Reading(error="; ".join(errors))
        return Reading(counters=dict(self._counts), notes=tuple(notes))

    def close(self) -> None:
        return None

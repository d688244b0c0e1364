"""Redis, as its clients see it and as it sees itself.

Each tick: a timed ``PING`` (``ping_ms``: what any client waits right now), ``INFO all``
(clients, blocked clients, ops, main-thread CPU, and per command the calls and the
microseconds spent, whose sum over a second is the share of that second Redis was busy
executing commands), new ``SLOWLOG`` entries (enabled by default, above 10 ms) quoted as
notes, and ``LATENCY LATEST`` where the latency monitor is enabled.

Counters: ``commands``, ``cpu`` (seconds), ``busy_usec`` (all commands), ``cmd.<name>.calls``
and ``cmd.<name>.usec``, ``rejected``, ``slowlog`` (new entries); gauges: ``ping_ms``,
``clients``, ``blocked``, ``memory_mb``, ``ops``, ``latency.<event>`` (ms).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import redis

from keelhaul.diagnose.model import Reading

__all__ = ["RedisCollector", "info_reading"]

SLOWLOG_FETCH = 16
NOTE_ARGS = 3


def info_reading(info: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Pure: ``INFO all`` (as redis-py parses it) → (gauges, counters)."""

    def num(key: str) -> float:
        value = info.get(key, 0)
        return float(value) if isinstance(value, int | float) else 0.0

    gauges = {
        "clients": num("connected_clients"),
        "blocked": num("blocked_clients"),
        "memory_mb": num("used_memory") / 2**20,
        "ops": num("instantaneous_ops_per_sec"),
    }
    counters = {
        "commands": num("total_commands_processed"),
        "cpu": num("used_cpu_sys_main_thread") + num("used_cpu_user_main_thread")
        or num("used_cpu_sys") + num("used_cpu_user"),
        "rejected": num("rejected_connections"),
        "hits": num("keyspace_hits"),
        "misses": num("keyspace_misses"),
        "evicted": num("evicted_keys"),
    }
    busy = 0.0
    for key, value in info.items():
        if not key.startswith("cmdstat_") or not isinstance(value, Mapping):
            continue
        name = key.removeprefix("cmdstat_")
        usec = float(value.get("usec", 0))
        counters[f"cmd.{name}.calls"] = float(value.get("calls", 0))
        counters[f"cmd.{name}.usec"] = usec
        busy += usec
    counters["busy_usec"] = busy
    return gauges, counters


def _slow_note(entry: Mapping[str, Any]) -> str:
    command = entry.get("command", b"")
    text = command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)
    words = text.split()
    shown = " ".join(words[:NOTE_ARGS]) + (" ..." if len(words) > NOTE_ARGS else "")
    return f"redis slowlog: {shown[:120]} took {float(entry.get('duration', 0)) / 1000:.1f} ms"


class RedisCollector:
    name = "redis"

    def __init__(self, url: str, timeout: float = 0.8) -> None:
        self._client: redis.Redis[bytes] = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._last_slow_id: int | None = None
        self._slow_total = 0.0

    def _slowlog(self) -> list[str]:
        entries = self._client.slowlog_get(SLOWLOG_FETCH)
        newest = max((int(e["id"]) for e in entries), default=None)
        if self._last_slow_id is None:
            self._last_slow_id = newest if newest is not None else -1
            return []
        fresh = [e for e in entries if int(e["id"]) > self._last_slow_id]
        if newest is not None:
            self._last_slow_id = max(self._last_slow_id, newest)
        self._slow_total += len(fresh)
        fresh.sort(key=lambda e: -float(e.get("duration", 0)))
        return [_slow_note(e) for e in fresh[:2]]

    def collect(self) -> Reading:
        try:
            t0 = time.perf_counter()
            self._client.ping()
            ping_ms = (time.perf_counter() - t0) * 1000
            info = self._client.info("all")
            notes = self._slowlog()
            latest = self._client.execute_command("LATENCY", "LATEST")
        except (redis.RedisError, OSError) as exc:
            return Reading(error=f"redis: {type(exc).__name__}")
        gauges, counters = info_reading(info)
        gauges["ping_ms"] = ping_ms
        counters["slowlog"] = self._slow_total
        for row in latest or ():
            if isinstance(row, list | tuple) and len(row) >= 3:
                event = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
                gauges[f"latency.{event}"] = float(row[2])
        return Reading(gauges=gauges, counters=counters, notes=tuple(notes))

    def close(self) -> None:
        self._client.close()

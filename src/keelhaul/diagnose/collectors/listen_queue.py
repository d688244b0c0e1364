"""Accept backlog of the stack's listening sockets.

For a socket in ``LISTEN`` state the kernel reports the current accept-queue length (as
``rx_queue`` in ``/proc/net/tcp``): connections the kernel has completed but no process has
accepted yet. A non-zero value that persists means every worker behind that port is busy:
the most direct sign of "no free workers" there is.

Read through sock_diag netlink (:mod:`.sockdiag`, LISTEN sockets only); ``/proc/net/tcp``,
which lists every socket as text, is the fallback where netlink is not available.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from keelhaul.diagnose.collectors import sockdiag
from keelhaul.diagnose.model import Reading

__all__ = ["ListenQueueCollector", "parse_listen_queues"]

_LISTEN = "0A"
SOURCES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def parse_listen_queues(text: str) -> dict[int, int]:
    """Pure: ``/proc/net/tcp`` text → port → accept queue, summed over its listening sockets."""
    out: dict[int, int] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or fields[3] != _LISTEN:
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        out[port] = out.get(port, 0) + int(fields[4].partition(":")[2], 16)
    return out


class ListenQueueCollector:
    """Gauge ``queue.<component>`` per watched port."""

    name = "listen"

    def __init__(self, ports: Mapping[str, int]) -> None:
        self._ports = dict(ports)

    def _queues(self) -> dict[int, int] | str:
        try:
            found: dict[int, int] = {}
            for row in sockdiag.dump(1 << sockdiag.LISTEN):
                found[row.sport] = found.get(row.sport, 0) + row.rqueue
            return found
        except OSError:
            pass
        found, errors = {}, []
        for source in SOURCES:
            try:
                text = source.read_text()
            except OSError as exc:
                errors.append(f"{source}: {exc.strerror}")
                continue
            for port, queued in parse_listen_queues(text).items():
                found[port] = found.get(port, 0) + queued
        if len(errors) == len(SOURCES):
            return "; ".join(errors)
        return found

    def collect(self) -> Reading:
        found = self._queues()
        if isinstance(found, str):
            return Reading(error=found)
        gauges = {
            f"queue.{component}": float(found[port])
            for component, port in self._ports.items()
            if port in found
        }
        return Reading(gauges=gauges)

    def close(self) -> None:
        return None

"""A noisy neighbour on a shared Redis: a slow command at a fixed duty cycle, bounded.

``python neighbour.py PORT BUSY_S IDLE_S LIMIT_S``: for at most LIMIT_S seconds, block the
Redis on PORT for BUSY_S (``DEBUG SLEEP``: the server's one thread does nothing else
meanwhile, as under a long script or an O(N) command, without burning a CPU of this shared
host), then leave it IDLE_S. The test that starts it stops it by pid.
"""

from __future__ import annotations

import sys
import time

import redis


def main(port: int, busy: float, idle: float, limit: float) -> None:
    client = redis.Redis(port=port, socket_timeout=busy + 5)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        client.execute_command("DEBUG", "SLEEP", f"{busy:g}")
        time.sleep(idle)


if __name__ == "__main__":
    port, busy, idle, limit = sys.argv[1:5]
    main(int(port), float(busy), float(idle), float(limit))

"""Small network helpers shared by the stack, tests and benchmarks."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

__all__ = ["free_port", "port_picker", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it; callers must handle a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def port_picker(host: str = "127.0.0.1") -> Iterator[Callable[[], int]]:
    """``pick()`` gives a free port that no other pick of this block gives: each picked
    socket stays bound until the block ends. :func:`free_port` closes its socket at once,
    so when few ports are free (tens of thousands of loopback connections in TIME_WAIT
    after a benchmark) the OS hands the same port out again and again. Raises ``OSError``
    when no port is free at all."""
    held: list[socket.socket] = []

    def pick() -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((host, 0))
        except OSError:
            sock.close()
            raise
        held.append(sock)
        return int(sock.getsockname()[1])

    try:
        yield pick
    finally:
        for sock in held:
            sock.close()


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """True once something accepts TCP connections on host:port, False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False

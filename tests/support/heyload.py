"""Test support: ``hey`` (Debian's HTTP load generator) for a bounded time, stopped by pid.

The diagnosis scenarios drive load with it: one process, many connections, a fixed
duration (``-z``), so the load outlives the warm-up and the seconds the diagnosis watches.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence

import pytest

__all__ = ["hey"]


@contextlib.contextmanager
def hey(
    url: str,
    *,
    headers: Sequence[str],
    concurrency: int,
    seconds: float,
    warmup: float,
    rate: float | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Load for ``seconds`` in all; yields after ``warmup``; stopped by pid in any case."""
    binary = shutil.which("hey")
    if binary is None:
        pytest.fail("hey is missing: apt-get install hey", pytrace=False)
    argv = [binary, "-z", f"{seconds:.0f}s", "-c", str(concurrency), "-t", "10"]
    if rate is not None:
        argv += ["-q", str(rate)]
    for header in headers:
        argv += ["-H", header]
    proc = subprocess.Popen([*argv, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(warmup)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=20)

"""Parallel transfers stop together; progress bars only on a terminal, only when large."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import pytest

from keelhaul.client.progress import TransferProgress
from keelhaul.client.transfer import Cancelled, run_parallel
from keelhaul.errors import DigestMismatch

pytestmark = pytest.mark.unit


def test_results_in_order() -> None:
    def task(n: int) -> Callable[[Callable[[], bool]], int]:
        def run(cancelled: Callable[[], bool]) -> int:
            time.sleep(0.01 * (5 - n))
            return n * n

        return run

    assert run_parallel([task(n) for n in range(5)], 3) == [0, 1, 4, 9, 16]
    assert run_parallel([task(n) for n in range(3)], 1) == [0, 1, 4]


def test_first_error_stops_the_others() -> None:
    stopped = threading.Event()

    def failing(cancelled: Callable[[], bool]) -> int:
        time.sleep(0.05)
        raise DigestMismatch("bad", expected="a", actual="b")

    def long_running(cancelled: Callable[[], bool]) -> int:
        for _ in range(500):
            if cancelled():
                stopped.set()
                raise Cancelled
            time.sleep(0.01)
        return 0

    started = time.monotonic()
    with pytest.raises(DigestMismatch):
        run_parallel([long_running, failing, long_running], 3)
    assert stopped.is_set()
    assert time.monotonic() - started < 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_above_the_threshold() -> None:
    terminal = _Terminal()
    with TransferProgress("pull", stream=terminal, threshold=1000) as bar:
        bar.add_total(600)
        bar.advance(100)
        assert terminal.getvalue() == ""  # small so far: no bar
        bar.add_total(600)
        bar.advance(1100)
        assert bar.done == 1200
    assert "pull" in terminal.getvalue()

    quiet = _Terminal()
    with TransferProgress("pull", stream=quiet, quiet=True, threshold=1) as bar:
        bar.add_total(10_000)
        bar.advance(10_000)
    assert quiet.getvalue() == ""

    pipe = io.StringIO()  # not a terminal
    with TransferProgress("pull", stream=pipe, threshold=1) as bar:
        bar.add_total(10_000)
    assert pipe.getvalue() == ""

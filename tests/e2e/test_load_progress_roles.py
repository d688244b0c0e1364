"""Progress beyond the headless run (issue #17): tests started from ``--web``, and a
``--worker`` showing its own share, each under a pseudo-terminal and piped.

``--web``: each test started from the web UI is shown as a headless run is (the block on a
terminal, ``progress`` lines elsewhere) until it stops, then one "test stopped" line.
``--worker``: one line of its own (master, state, users, requests sent) redrawn on a
terminal, a ``worker progress`` line at ``--print-every`` elsewhere, and a line when the
test stops. Every process is started here and stopped by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from keelhaul.netutil import free_port
from support.stacks import StackInfo, clean_env
from support.terminal import on_pty

pytestmark = pytest.mark.e2e

SMALL = ("--images", "2", "--layers", "1", "--layer-size", "64k", "--mix", "pull=4,login=1")


def _load(stack: StackInfo, *args: str) -> list[str]:
    return [sys.executable, "-m", "keelhaul", "load", "--stack-dir", str(stack.dir), *SMALL,
            *args]  # fmt: skip


class _Output:
    """Everything written to ``fd`` (a pipe, or a pseudo-terminal's master side), collected
    by a thread until the writer closes it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:  # EIO: the pseudo-terminal's other side is closed
                return
            if not chunk:
                return
            with self._lock:
                self._data += chunk

    def text(self) -> str:
        with self._lock:
            return self._data.decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout_s: float = 60, *, after: int = 0) -> int:
        """Where ``needle`` first shows (at or after ``after``); fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            where = self.text().find(needle, after)
            if where >= 0:
                return where
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not shown in {timeout_s} s:\n{self.text()[-3000:]}")

    def closed(self, timeout_s: float = 10) -> str:
        self._thread.join(timeout_s)
        return self.text()


@contextmanager
def _started(
    argv: list[str], *, terminal: bool
) -> Iterator[tuple[subprocess.Popen[bytes], _Output]]:
    """``argv`` with its stderr (and, on a terminal, stdin and stdout) on a 120x40
    pseudo-terminal or a pipe; its output. Killed by pid if still running at the end."""
    if terminal:
        proc, master = on_pty(argv, clean_env({"TERM": "xterm"}))
        output = _Output(master)
    else:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=clean_env(),
        )  # fmt: skip
        assert proc.stdout is not None
        output = _Output(proc.stdout.fileno())
    try:
        yield proc, output
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        output.closed()
        if terminal:
            os.close(master)
        elif proc.stdout is not None:
            proc.stdout.close()


def _post(port: int, path: str, form: dict[str, str] | None = None) -> None:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=10) as r:
        assert r.status == 200, r.read()


def _web_test(stack: StackInfo, *, terminal: bool) -> tuple[int, str]:
    """Start a test from the web UI, let it run 3 s, stop it there, then Ctrl-C."""
    port = free_port()
    argv = _load(stack, "--web", "--web-port", str(port), "--print-every", "1")
    with _started(argv, terminal=terminal) as (proc, output):
        output.wait_for(f"Locust web UI on http://127.0.0.1:{port}/")
        _post(port, "/swarm", {"user_count": "2", "spawn_rate": "2"})
        output.wait_for("users 2" if terminal else " users=2 ", 30)
        time.sleep(2.5)
        _post(port, "/stop")
        output.wait_for("keelhaul load: test stopped after ", 30)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        return code, output.closed()


def test_web_on_a_terminal_shows_the_block_while_a_test_runs(stack: StackInfo) -> None:
    code, out = _web_test(stack, terminal=True)
    assert code == 130, out[-3000:]
    stopped = out.find("keelhaul load: test stopped after ")
    block = out.find("requests ", out.find("users 2"))
    assert "\x1b[" in out and 0 <= block < stopped
    assert "image pull" in out[:stopped] and "p95 5s" in out[:stopped]
    assert "start another from the web UI, or Ctrl-C to write the reports" in out
    assert out.find("Aggregated") > stopped  # Ctrl-C: the table of what was measured
    assert "keelhaul load: progress " not in out


def test_web_piped_prints_progress_lines_until_the_test_stops(stack: StackInfo) -> None:
    code, out = _web_test(stack, terminal=False)
    assert code == 130, out[-3000:]
    lines = out.splitlines()
    stopped = next(i for i, line in enumerate(lines) if "test stopped after " in line)
    progress = [i for i, line in enumerate(lines) if line.startswith("keelhaul load: progress ")]
    assert len(progress) >= 2, out
    assert max(progress) < stopped  # the display ends with the test
    for i in progress:
        assert " elapsed=" in lines[i] and " requests=" in lines[i]
    assert any(" users=2 " in lines[i] for i in progress)
    assert "\x1b" not in out and "Aggregated" in out


def test_web_with_a_run_time_follows_a_test_restarted_from_the_ui(stack: StackInfo) -> None:
    """``--web --run-time`` starts by itself; stopped from the UI and started again there,
    the second test is followed too, until the run's time is up."""
    port = free_port()
    argv = _load(stack, "--web", "--web-port", str(port), "--users", "2", "--run-time", "14s",
                 "--print-every", "1")  # fmt: skip
    with _started(argv, terminal=False) as (proc, output):
        output.wait_for(" users=2 ", 60)
        _post(port, "/stop")
        stopped = output.wait_for("keelhaul load: test stopped after ", 30)
        _post(port, "/swarm", {"user_count": "1", "spawn_rate": "1"})
        output.wait_for(" users=1 ", 30, after=stopped)
        assert proc.wait(timeout=60) == 0, output.closed()[-3000:]
        out = output.closed()
    after = out[stopped:].splitlines()
    assert any(x.startswith("keelhaul load: progress ") and " users=1 " in x for x in after), out
    assert out.count("keelhaul load: test stopped after ") == 1  # the run's own end says none
    assert "Aggregated" in out


def _master_and_worker(
    stack: StackInfo, run_time: str, *worker_args: str
) -> tuple[list[str], list[str]]:
    """A master on a free loopback port (2 users, no progress of its own) and one worker."""
    port = free_port()
    master = _load(
        stack, "--master", "--master-bind-host", "127.0.0.1", "--master-port", str(port),
        "--expect-workers", "1", "--users", "2", "--run-time", run_time, "--print-every", "0",
    )  # fmt: skip
    worker = [
        sys.executable, "-m", "keelhaul", "load", "--worker", "--master-host", "127.0.0.1",
        "--master-port", str(port), "--stack-dir", str(stack.dir), *worker_args,
    ]  # fmt: skip
    return master, worker


def _worker_run(stack: StackInfo, *, terminal: bool, print_every: str) -> str:
    """A master (piped, no progress) leading a 4 s run of one worker, which is the process
    under test; the worker's output."""
    master_argv, worker_argv = _master_and_worker(stack, "4s", "--print-every", print_every)
    with _started(master_argv, terminal=False) as (master, master_out):
        master_out.wait_for("waiting for 1 workers")
        with _started(worker_argv, terminal=terminal) as (worker, worker_out):
            assert master.wait(timeout=90) == 0, master_out.closed()[-3000:]
            assert worker.wait(timeout=30) == 0, worker_out.closed()[-3000:]
            return worker_out.closed()


def test_worker_on_a_terminal_redraws_one_line_of_its_own(stack: StackInfo) -> None:
    out = _worker_run(stack, terminal=True, print_every="10s")
    shown = out.find("(connected): running, users 2, requests ")
    assert shown >= 0, out[-3000:]
    assert out.rfind("worker of 127.0.0.1:", 0, shown) >= 0
    assert "\x1b[" in out  # redrawn in place, each second (not every --print-every)
    assert out.find("keelhaul load: worker: test stopped: ") > shown
    assert "worker progress " not in out


def test_worker_piped_prints_its_line_at_the_interval(stack: StackInfo) -> None:
    out = _worker_run(stack, terminal=False, print_every="1")
    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("keelhaul load: worker progress ")]
    assert len(progress) >= 2, out
    for line in progress:
        assert " master=127.0.0.1:" in line and " connected=yes " in line
        assert " requests=" in line and " rps=" in line and " failures=" in line
    assert any(" state=running users=2 " in line for line in progress)
    stopped = [line for line in lines if line.startswith("keelhaul load: worker: test stopped: ")]
    assert len(stopped) == 1 and " requests sent, 0 failures" in stopped[0]
    assert "\x1b" not in out


def test_a_worker_stopped_mid_test_gives_the_terminal_its_cursor_back(stack: StackInfo) -> None:
    """SIGTERM (a container stopped) while the worker's line is drawn: the line is cleared
    and the cursor, hidden while drawing, shown again."""
    master_argv, worker_argv = _master_and_worker(stack, "60s")
    with _started(master_argv, terminal=False) as (master, master_out):
        master_out.wait_for("waiting for 1 workers")
        with _started(worker_argv, terminal=True) as (worker, worker_out):
            shown = worker_out.wait_for("(connected): running, users 2, requests ", 60)
            os.kill(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
            out = worker_out.closed()
        master.send_signal(signal.SIGINT)
        master.wait(timeout=60)
    assert "\x1b[?25l" in out[:shown]  # hidden while the line is drawn
    assert out.rfind("\x1b[?25h") > shown, out[-2000:]

"""``keelhaul load`` shows the run while it runs (issue #17), driven as a user drives it.

On a pseudo-terminal: a live status block, then the final table in its place. Piped (a CI
log): one plain ``progress`` line every ``--print-every`` seconds and nothing else new;
``--print-every 0``: none. Runs are a few seconds on the session's stack.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.stacks import StackInfo, clean_env
from support.terminal import on_pty

pytestmark = pytest.mark.e2e

SMALL = ("--images", "2", "--layers", "1", "--layer-size", "64k", "--users", "2")
PROGRESS = "keelhaul load: progress "
BEFORE_RUN = (
    "keelhaul load: reusing the running stack",
    "keelhaul load: target ",
    "keelhaul load: seeded ",
    "keelhaul load: test data: ",
    "keelhaul load: running: ",
)


def _argv(stack: StackInfo, *args: str) -> list[str]:
    return [sys.executable, "-m", "keelhaul", "load", "--stack-dir", str(stack.dir), *SMALL,
            "--mix", "pull=4,login=1", *args]  # fmt: skip


def _piped(stack: StackInfo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _argv(stack, *args), capture_output=True, text=True, env=clean_env(), timeout=120,
        check=False,
    )  # fmt: skip


def _under_pty(
    argv: list[str], timeout_s: float = 120, interrupt_on: str | None = None
) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a 120x40 pseudo-terminal; its exit code
    and everything it wrote. ``interrupt_on``: press Ctrl-C (SIGINT) once this is shown."""
    proc, master = on_pty(argv, clean_env({"TERM": "xterm"}))
    out = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not data:
                    break
                out += data
                if interrupt_on is not None and interrupt_on.encode() in out:
                    proc.send_signal(signal.SIGINT)
                    interrupt_on = None
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), out.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)


def _known(line: str) -> bool:
    return line.startswith(BEFORE_RUN) or line.startswith("keelhaul load: Cleanup")


def test_on_a_terminal_a_live_block_then_the_final_table(stack: StackInfo) -> None:
    code, out = _under_pty(_argv(stack, "--run-time", "4s"))
    assert code == 0, out[-3000:]
    assert "\x1b[" in out  # drawn in place, by rich
    block = out.rfind("requests ")
    assert "running " in out and "users 2" in out and block >= 0
    assert "failures " in out
    assert "image pull" in out[:block] and "p95 5s" in out
    table = out.find("Aggregated")
    assert table > block, "the final table comes after the last block"
    assert PROGRESS not in out  # plain lines are for logs, not terminals


def test_ctrl_c_on_a_terminal_shows_what_was_measured(stack: StackInfo) -> None:
    code, out = _under_pty(_argv(stack, "--run-time", "60s"), interrupt_on="p95 5s")
    assert code == 130, out[-3000:]
    stopped = out.find("interrupted: stopping the users")
    assert stopped > out.find("p95 5s") >= 0
    assert out.find("Aggregated") > stopped


def test_piped_prints_plain_lines_at_the_interval_and_nothing_else(
    stack: StackInfo, tmp_path: Path
) -> None:
    done = _piped(stack, "--run-time", "4s", "--print-every", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    progress = [line for line in lines if line.startswith(PROGRESS)]
    assert len(progress) >= 2, done.stderr
    for line in progress:
        assert all(ord(c) >= 32 for c in line), repr(line)
        assert " elapsed=" in line and " rps=" in line and " failures=" in line
        assert " users=" in line and " image_pull.p95=" in line
    assert any(" users=2 " in line for line in progress)  # the last may catch users stopping
    assert [line for line in lines if not line.startswith(PROGRESS) and not _known(line)] == []
    assert "\x1b" not in done.stderr and "\x1b" not in done.stdout
    assert "Aggregated" in done.stdout and "progress" not in done.stdout


def test_print_every_zero_prints_none(stack: StackInfo) -> None:
    done = _piped(stack, "--run-time", "3s", "--print-every", "0")
    assert done.returncode == 0, done.stderr
    assert "progress" not in done.stderr
    assert [line for line in done.stderr.splitlines() if not _known(line)] == []
    assert "Aggregated" in done.stdout

"""Record a call-graph profile of the token service's workers with py-spy, render it with dot.

``py-spy record --pid <gunicorn master> --subprocesses --nonblocking`` samples every worker
from outside, without stopping them (so the profile does not slow down what it measures),
and writes collapsed stacks; :mod:`.callgraph` turns them into a graph and Graphviz's
``dot`` (Debian package ``graphviz``) into an SVG. The profiler runs until :meth:`stop`
(SIGINT: py-spy then writes what it has) or for a fixed duration.
"""

from __future__ import annotations

import linecache
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from keelhaul.diagnose.analysis import Profile
from keelhaul.diagnose.callgraph import build, parse_collapsed, render_dot, summary
from keelhaul.diagnose.verdict import HotSpot
from keelhaul.errors import ProfileError

__all__ = [
    "BESIDE_LOAD_RATE",
    "DEFAULT_RATE",
    "Profiler",
    "analyse_profile",
    "find_py_spy",
    "render_svg",
]

DEFAULT_RATE = 100
"""Samples per second per worker for ``keelhaul profile`` (a profile on its own)."""
BESIDE_LOAD_RATE = 50
"""For ``--profile`` during a diagnosed run: half the cost, still thousands of samples."""
MAX_SECONDS = 3600
STOP_WAIT = 20.0


def find_py_spy() -> str:
    """py-spy next to this Python (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise ProfileError(
            "py-spy not found; install keelhaul's diagnose extra (pip install py-spy)"
        )
    return found


class Profiler:
    """One py-spy process sampling ``pid`` and its children into ``raw`` (collapsed stacks)."""

    def __init__(
        self, pid: int, raw: Path, *, rate: int = DEFAULT_RATE, seconds: int = MAX_SECONDS
    ) -> None:
        self.pid = pid
        self.raw = raw
        self.rate = rate
        self.seconds = seconds
        self.log = raw.with_suffix(".log")
        self._proc: subprocess.Popen[bytes] | None = None
        self.started: float | None = None

    def argv(self) -> list[str]:
        return [
            find_py_spy(),
            "record",
            "--pid", str(self.pid),
            "--subprocesses",
            "--nonblocking",
            "--rate", str(self.rate),
            "--duration", str(self.seconds),
            "--format", "raw",
            "--full-filenames",
            "-o", str(self.raw),
        ]  # fmt: skip

    def start(self) -> None:
        self.raw.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.started = time.monotonic()

    def stop(self) -> Path:
        """Ask py-spy to write what it has (SIGINT) and wait; the raw file's path."""
        proc = self._proc
        if proc is None:
            raise ProfileError("the profiler was not started")
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if not self.raw.exists() or self.raw.stat().st_size == 0:
            tail = self.log.read_text(errors="replace")[-600:] if self.log.exists() else ""
            raise ProfileError(f"py-spy recorded nothing (exit {proc.returncode}): {tail.strip()}")
        return self.raw

    def run_for(self, seconds: float) -> Path:
        self.start()
        try:
            time.sleep(seconds)
        finally:
            raw = self.stop()
        return raw


def render_svg(dot_text: str, timeout: float = 60.0) -> str:
    binary = shutil.which("dot")
    if binary is None:
        raise ProfileError("dot not found; install the Debian package: apt-get install graphviz")
    try:
        done = subprocess.run(
            [binary, "-Tsvg"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProfileError("dot took too long to lay out the call graph") from None
    if done.returncode != 0:
        raise ProfileError(f"dot failed: {done.stderr.decode(errors='replace')[-300:].strip()}")
    return done.stdout.decode("utf-8", "replace")


def _source_line(file: str, line: int) -> str | None:
    text = linecache.getline(file, line) if file.startswith("/") else ""
    return text or None


def analyse_profile(
    raw: Path, *, title: str = "", threshold: float = 0.01, svg: bool = True
) -> Profile:
    """Collapsed stacks → call graph, DOT, SVG (unless ``svg`` is False) and the hot spot."""
    stacks = parse_collapsed(raw.read_text(errors="replace"))
    graph = build(stacks, _source_line)
    if graph.samples == 0:
        return Profile(summary=summary(graph), dot="", note="no CPU samples: the workers were idle")
    dot = render_dot(graph, threshold=threshold, title=title)
    hot_node = graph.hotspot()
    hot = None
    if hot_node is not None:
        path = tuple(graph.label(k) for k in graph.hottest)
        hot = HotSpot(graph.label(hot_node.key), hot_node.self / graph.samples, path, graph.samples)
    return Profile(summary=summary(graph), dot=dot, svg=render_svg(dot) if svg else None, hot=hot)

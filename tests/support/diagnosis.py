"""Test support: the parts the diagnosis' end-to-end scenarios share.

* ``keelhaul diagnose`` as a subprocess and its JSON report (:func:`start_cli`,
  :func:`read_report`); a verdict as text for assertion messages (:func:`verdict_text`);
* a monitored stack's Prometheus once every job has been scraped (:func:`stack_prometheus`);
* the perturbations that make a healthy stack slow: Redis kept busy by a slow script
  (:func:`busy_redis`), a process under a tiny CPU quota (:func:`cpu_starved`);
* ``keelhaul load --target <entry> --diagnose --prometheus <url>`` with the stack treated as
  remote (its entry URL, credentials on stdin, its Prometheus: no stack directory, no pid,
  no file of it), and optionally the local source (``keelhaul diagnose --dir``) watching the
  same run beside it (:func:`load_through_prometheus`).

Every process started here is stopped by pid, even when an assertion fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from support.promkit import wait_for_targets
from support.stacks import CLI_TIMEOUT, StackInfo, clean_env

__all__ = [
    "PROGRESS",
    "STACK_JOBS",
    "RemoteRun",
    "busy_redis",
    "cpu_starved",
    "load_through_prometheus",
    "read_report",
    "stack_prometheus",
    "start_cli",
    "verdict_text",
]

STACK_JOBS = frozenset({"nginx", "auth", "registry", "redis", "node", "process", "prometheus"})
"""The scrape jobs of ``keelhaul stack up --monitoring``."""
PROGRESS = "keelhaul load: progress "
"""How a load run's progress lines start off a terminal (the first one: the run has begun)."""
BUSY_LUA = (
    "local t=redis.call('TIME') local s=t[1]*1000000+t[2] "
    "repeat local n=redis.call('TIME') until (n[1]*1000000+n[2])-s >= tonumber(ARGV[1]) return 1"
)


def verdict_text(doc: Mapping[str, Any]) -> str:
    v = doc["verdict"]
    return "\n".join([f"{v['tier']}: {v['title']}", *v["evidence"], *v["caveats"]])


def stack_prometheus(info: StackInfo) -> str:
    """The Prometheus of a stack started with ``--monitoring`` (its URL, from stack.json),
    once every job has been scraped a few times."""
    url: str = info.raw["prometheus"]
    wait_for_targets(url, set(STACK_JOBS))
    return url


def start_cli(*args: str) -> subprocess.Popen[str]:
    """``python -m keelhaul ARGS`` in the background, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "keelhaul", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )  # fmt: skip


def read_report(proc: subprocess.Popen[str], report: Path) -> dict[str, Any]:
    """A ``keelhaul diagnose --json REPORT --html ...`` run's end: it succeeded, printed a
    verdict and wrote both reports; the JSON document."""
    out, err = proc.communicate(timeout=CLI_TIMEOUT)
    assert proc.returncode == 0, err
    assert out.startswith("verdict: ")
    doc: dict[str, Any] = json.loads(report.read_text())
    assert report.with_suffix(".html").stat().st_size > 10_000
    return doc


def _stop(*procs: subprocess.Popen[str] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def busy_redis(
    url: str, seconds: float, busy_us: int = 40_000, gap_s: float = 0.005
) -> Iterator[None]:
    """A client that keeps Redis' one thread in a script ~90% of the time (a slow command),
    for at most ``seconds``."""
    stop = threading.Event()
    client = redis.Redis.from_url(url, socket_timeout=5)

    def loop() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            client.eval(BUSY_LUA, 0, busy_us)
            stop.wait(gap_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        client.close()


@contextlib.contextmanager
def cpu_starved(pid: int, cores: float = 0.05) -> Iterator[str]:
    """The process under a CPU quota (its own cgroup, v1 ``cpu`` controller) like a container
    with a tiny CPU limit; where cgroups cannot be written, SIGSTOP/SIGCONT duty cycling."""
    v1 = Path("/sys/fs/cgroup/cpu")
    if (v1 / "cgroup.procs").exists() and os.access(v1, os.W_OK):
        group = v1 / f"keelhaul-test-{uuid.uuid4().hex[:8]}"
        group.mkdir()
        try:
            (group / "cpu.cfs_period_us").write_text("100000")
            (group / "cpu.cfs_quota_us").write_text(str(int(cores * 100_000)))
            (group / "cgroup.procs").write_text(str(pid))
            yield "cgroup"
        finally:
            with contextlib.suppress(OSError):
                (v1 / "cgroup.procs").write_text(str(pid))
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        return
    stop = threading.Event()

    def cycle() -> None:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            stop.wait(0.09)
            os.kill(pid, signal.SIGCONT)
            stop.wait(0.01)

    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    try:
        yield "sigstop"
    finally:
        stop.set()
        thread.join(timeout=5)
        os.kill(pid, signal.SIGCONT)


@dataclass(frozen=True)
class RemoteRun:
    doc: dict[str, Any]
    """``diagnosis.json`` of the run, read through Prometheus."""
    stdout: str
    local: dict[str, Any] | None
    """The local source's report over the same run (``local_s``), or None."""


def load_through_prometheus(
    info: StackInfo,
    prometheus: str,
    out: Path,
    *load: str,
    run_s: float,
    local_s: float | None = None,
    within: Sequence[str] = (),
    at_start: Callable[[], object] | None = None,
) -> RemoteRun:
    """``keelhaul load --target <entry> --diagnose --prometheus <url>`` for ``run_s``: the
    stack as a remote one, credentials on stdin. With ``local_s``, ``keelhaul diagnose
    --dir`` (the local source, the load process as the generator) starts at the run's first
    progress line and watches ``local_s`` of its seconds. ``within``: the argv that runs the
    load command (``sh -c '...; exec "$@"' name``); ``at_start`` is called at that first
    progress line (after the local source has started)."""
    argv = [
        *within, sys.executable, "-m", "keelhaul", "load", "--target", info.entry,
        "-u", "admin", "--password-stdin", *load, "--run-time", f"{run_s:g}s",
        "--images", "1", "--layer-size", "64k", "--print-every", "1",
        "--diagnose", "--prometheus", prometheus, "--diagnose-dir", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=clean_env(),
    )  # fmt: skip
    local, local_report = None, out / "local" / "diagnosis.json"
    local_doc: dict[str, Any] | None = None
    try:
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(info.password("admin") + "\n")
        proc.stdin.close()
        proc.stdin = None  # given and closed: communicate() must not flush it
        early = []
        for line in proc.stderr:  # the run has begun at its first progress line
            early.append(line)
            if line.startswith(PROGRESS):
                if local_s is not None:
                    local_report.parent.mkdir(parents=True)
                    local = start_cli(
                        "diagnose", "--dir", str(info.dir), "--duration", f"{local_s:g}",
                        "--load-pid", str(proc.pid), "--json", str(local_report),
                        "--html", str(local_report.with_suffix(".html")),
                    )  # fmt: skip
                if at_start is not None:
                    at_start()
                break
        stdout, stderr = proc.communicate(timeout=CLI_TIMEOUT)
        assert proc.returncode == 0, "".join(early) + stderr
        assert "verdict: " in stdout
        local_doc = read_report(local, local_report) if local is not None else None
    finally:
        _stop(proc, local)
    if local_s is not None:
        assert local_doc is not None, "the load run printed no progress line"
    doc: dict[str, Any] = json.loads((out / "diagnosis.json").read_text())
    assert doc["source"]["kind"] == "prometheus" and doc["source"]["unseen"] == []
    assert doc["source"]["resolution_s"] == pytest.approx(1.0, abs=0.05)
    assert "stack_dir" not in doc["watched"]
    assert doc["signals"]["tiers"]["generator"]["procs"] >= 1  # this load process, sampled here
    assert (out / "diagnosis.html").stat().st_size > 10_000
    return RemoteRun(doc, stdout, local_doc)

"""Test support: real CPU cgroups made by a test, with processes moved in and back out.

A container's CPU limit is a cgroup's CFS quota; this makes the same thing for processes
the test started (a tier of the stack, a load generator), so the kernel throttles them the
way it throttles a pod with ``resources.limits.cpu``. v1 (``cpu`` and ``cpuacct``, one
mount or two) and v2 (the unified hierarchy, ``cpu.max``) are both handled. Everything is
undone at the end, even when the test fails: every process still in a group (workers
forked meanwhile included) is moved back to the root group, then the groups are removed,
deepest first. Needs root; ``available()`` says whether this machine allows it.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil

from support.cadvisor_standin import Mounts, find_mounts

__all__ = ["CpuGroups", "available", "cpu_groups", "family"]

PERIOD_US = 100_000


def _mounts() -> Mounts:
    return find_mounts(Path("/proc/self/mountinfo").read_text())


def available() -> bool:
    try:
        mounts = _mounts()
    except RuntimeError:
        return False
    return os.access(mounts.cpu, os.W_OK) and (mounts.cpu / "cgroup.procs").exists()


def family(pid: int) -> list[int]:
    """A process and its descendants (a gunicorn master and its workers, nginx's...)."""
    proc = psutil.Process(pid)
    return [pid, *(child.pid for child in proc.children(recursive=True))]


class CpuGroups:
    """Groups under one test-owned parent (``/keelhaul-test-<id>``) in every CPU hierarchy."""

    def __init__(self, mounts: Mounts) -> None:
        self.mounts = mounts
        self.parent = f"/keelhaul-test-{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    def _roots(self) -> list[Path]:
        roots = [self.mounts.cpu]
        if (
            self.mounts.cpuacct is not None
            and self.mounts.cpuacct.resolve() != self.mounts.cpu.resolve()
        ):
            roots.append(self.mounts.cpuacct)
        return roots

    def _mkdir(self, rel: str) -> None:
        for root in self._roots():
            directory = root / rel.lstrip("/")
            if self.mounts.version == 2:
                (directory.parent / "cgroup.subtree_control").write_text("+cpu")
            directory.mkdir()
        self.created.append(rel)

    def make(self, rel: str, cores: float | None = None, requests: float | None = None) -> str:
        """``parent/rel`` (intermediate groups too); with ``cores``, a CFS quota of that many
        CPUs (a pod's ``limits.cpu``); with ``requests``, the CPU weight Kubernetes gives a
        pod that requests that many CPUs (``cpu.shares`` = 1024 per CPU). Returns the path
        relative to the hierarchy's root."""
        path = self.parent
        if path not in self.created:
            self._mkdir(path)
        for part in rel.strip("/").split("/"):
            path = f"{path}/{part}"
            if path not in self.created:
                self._mkdir(path)
        if cores is not None:
            self.limit(path, cores)
        if requests is not None:
            shares = int(requests * 1024)
            directory = self.mounts.cpu / path.lstrip("/")
            if self.mounts.version == 1:
                (directory / "cpu.shares").write_text(str(shares))
            else:  # the kubelet's conversion of shares to cgroup v2's weight
                (directory / "cpu.weight").write_text(str(1 + ((shares - 2) * 9999) // 262142))
        return path

    def limit(self, rel: str, cores: float | None) -> None:
        """Set (or, with None, lift) the group's CFS quota, as ``kubectl set resources``
        would on a running pod."""
        directory = self.mounts.cpu / rel.lstrip("/")
        quota = int(cores * PERIOD_US) if cores is not None else -1
        if self.mounts.version == 1:
            (directory / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (directory / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (directory / "cpu.max").write_text(f"{quota if quota > 0 else 'max'} {PERIOD_US}")

    def procs_files(self, rel: str) -> list[Path]:
        """The group's ``cgroup.procs`` in every hierarchy: a process that writes its own
        pid there (``sh -c 'echo $$ > F; exec ...'``) starts its program inside."""
        return [root / rel.lstrip("/") / "cgroup.procs" for root in self._roots()]

    def move(self, rel: str, pids: Iterable[int]) -> None:
        """Every process in ``pids`` into the group (its threads follow it)."""
        for root in self._roots():
            procs = root / rel.lstrip("/") / "cgroup.procs"
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    procs.write_text(str(pid))

    def release(self) -> None:
        """Everyone back to the root group, then the groups removed (deepest first)."""
        for root in self._roots():
            for rel in sorted(self.created, key=lambda p: -p.count("/")):
                procs = root / rel.lstrip("/") / "cgroup.procs"
                with contextlib.suppress(OSError):
                    for pid in procs.read_text().split():
                        with contextlib.suppress(OSError):
                            (root / "cgroup.procs").write_text(pid)
            for rel in sorted(self.created, key=lambda p: -p.count("/")):
                directory = root / rel.lstrip("/")
                for _ in range(50):
                    try:
                        directory.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)
        self.created.clear()


@contextlib.contextmanager
def cpu_groups() -> Iterator[CpuGroups]:
    groups = CpuGroups(_mounts())
    try:
        yield groups
    finally:
        groups.release()

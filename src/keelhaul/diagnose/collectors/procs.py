"""CPU, memory and scheduling of every process in the run, grouped by tier (psutil, /proc).

Tiers: the stack's (``nginx``, ``auth``, ``registry``, ``redis``: each recorded leader and
its children, found again every tick so restarted workers count), the ``generator`` (pids
given by the caller, their children, and any other process found talking to the stack's
ports: ``hey``, ``wrk``, another Locust), and ``diagnosis`` (this process and its children,
py-spy included), so the tool's own cost is on the record.

Per tier, every tick:

========================  =============================================================
``cpu.<tier>``            counter: CPU seconds (user + system) since the start
``runq.<tier>``           counter: seconds its threads were runnable but waiting for a CPU
``throttled.<tier>``      counter: seconds its cgroup was throttled by a CPU quota (the
                          stack's tiers: their leader's cgroup; the generator: the first
                          load pid's)
``busiest.<tier>``        gauge: cores used by its busiest thread over the last interval
                          (1.0 = one thread pinned: a single-threaded process is saturated)
``rss_mb.<tier>``         gauge: resident memory, MiB
``procs.<tier>``          gauge: process count
``cpu_limit.<tier>``      gauge: the cgroup CPU quota in cores, when there is one
========================  =============================================================

plus ``host.busy``/``host.total``/``host.steal`` counters (all CPUs) and ``host.cores``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from keelhaul.diagnose.collectors import sockdiag
from keelhaul.diagnose.model import Reading

__all__ = [
    "CgroupCpu",
    "ProcessCollector",
    "cgroup_cpu_dir",
    "parse_cgroup_cpu",
    "parse_schedstat",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_schedstat(text: str) -> float:
    """``/proc/<pid>/task/<tid>/schedstat`` → seconds spent waiting on a run queue."""
    fields = text.split()
    return int(fields[1]) / 1e9 if len(fields) >= 2 else 0.0


@dataclass(frozen=True)
class CgroupCpu:
    limit_cores: float | None
    throttled_s: float
    periods: float
    throttled_periods: float


def cgroup_cpu_dir(proc_cgroup: str, root: Path = CGROUP_ROOT) -> tuple[Path, int] | None:
    """The cgroup directory holding a process's CPU controller, and its version (1 or 2)."""
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        names = controllers.split(",")
        if "cpu" in names:
            return root / controllers / path.lstrip("/"), 1
        if hid == "0" and controllers == "":
            unified = root / "unified" if (root / "unified").is_dir() else root
            return unified / path.lstrip("/"), 2
    return None


def parse_cgroup_cpu(version: int, files: Mapping[str, str]) -> CgroupCpu:
    """Pure: the controller's files (``cpu.stat`` and the quota files) → :class:`CgroupCpu`."""
    stat: dict[str, float] = {}
    for line in files.get("cpu.stat", "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            stat[key] = float(value)
    limit: float | None = None
    if version == 1:
        quota = float(files.get("cpu.cfs_quota_us", "-1").strip() or -1)
        period = float(files.get("cpu.cfs_period_us", "100000").strip() or 100000)
        if quota > 0 and period > 0:
            limit = quota / period
        throttled = stat.get("throttled_time", 0.0) / 1e9
    else:
        quota_text, _, period_text = files.get("cpu.max", "max").strip().partition(" ")
        if quota_text != "max" and period_text:
            limit = float(quota_text) / float(period_text)
        throttled = stat.get("throttled_usec", 0.0) / 1e6
    return CgroupCpu(
        limit_cores=limit,
        throttled_s=throttled,
        periods=stat.get("nr_periods", 0.0),
        throttled_periods=stat.get("nr_throttled", 0.0),
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_cgroup_cpu(pid: int, root: Path = CGROUP_ROOT) -> CgroupCpu | None:
    text = _read(Path(f"/proc/{pid}/cgroup"))
    located = cgroup_cpu_dir(text, root) if text else None
    if located is None:
        return None
    directory, version = located
    names = ("cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max")
    files = {n: t for n in names if (t := _read(directory / n)) is not None}
    if "cpu.stat" not in files:
        return None
    return parse_cgroup_cpu(version, files)


def children_map(proc: Path = Path("/proc")) -> dict[int, list[int]]:
    """Parent pid → its children's pids, from one pass over ``/proc/*/stat``."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def pids_holding(inodes: set[int], skip: set[int]) -> set[int]:
    """Processes (other than ``skip``) with an open file descriptor on one of these sockets."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    target = os.readlink(fd.path)
                except OSError:
                    continue
                if target in wanted:
                    found.add(int(entry.name))
                    break
    return found


def _run_delay(pid: int) -> float:
    total = 0.0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        text = _read(Path(f"/proc/{pid}/task/{tid}/schedstat"))
        if text:
            total += parse_schedstat(text)
    return total


Key = tuple[int, float]  # (pid, create_time): a pid reused by another process is another key


class ProcessCollector:
    name = "procs"

    def __init__(
        self,
        leaders: Mapping[str, int],
        *,
        load_pids: Sequence[int] = (),
        entry_ports: Sequence[int] = (),
        cores: int = 1,
        discover_every: int = 5,
    ) -> None:
        self._leaders = dict(leaders)
        self._load_pids = tuple(load_pids)
        self._entry_ports = frozenset(entry_ports)
        self._cores = cores
        self._discover_every = max(1, discover_every)
        self._ticks = 0
        self._discovered: set[int] = set()
        self._self = os.getpid()
        self._procs: dict[int, psutil.Process] = {}
        self._cpu: dict[Key, float] = {}
        self._runq: dict[Key, float] = {}
        self._threads: dict[tuple[Key, int], float] = {}
        self._totals: dict[str, float] = {}
        self._last_wall: float | None = None

    # ------------------------------------------------------------------ membership

    def _process(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        try:
            if proc is None or not proc.is_running():
                proc = psutil.Process(pid)
                self._procs[pid] = proc
            return proc
        except psutil.Error:
            self._procs.pop(pid, None)
            return None

    def _family(self, pid: int, children: Mapping[int, list[int]]) -> list[psutil.Process]:
        """``pid`` and its descendants (from this tick's parent map), as live processes."""
        out: list[psutil.Process] = []
        todo = [pid]
        while todo:
            current = todo.pop()
            proc = self._process(current)
            if proc is not None:
                out.append(proc)
                todo.extend(children.get(current, ()))
        return out

    def _discover(self, taken: set[int]) -> None:
        """Processes with a connection to one of the stack's entry ports: load generators."""
        if not self._entry_ports:
            return
        try:
            rows = sockdiag.dump(1 << sockdiag.ESTABLISHED)
        except OSError:
            return
        inodes = {r.inode for r in rows if r.inode and r.dport in self._entry_ports}
        if inodes:
            self._discovered.update(pids_holding(inodes, skip=taken))

    def members(self) -> dict[str, list[psutil.Process]]:
        children = children_map()
        tiers: dict[str, list[psutil.Process]] = {}
        for tier, pid in self._leaders.items():
            tiers[tier] = self._family(pid, children)
        tiers["diagnosis"] = self._family(self._self, children)
        taken = {p.pid for procs in tiers.values() for p in procs}
        if self._ticks % self._discover_every == 0:
            self._discover(taken)
        generator: dict[int, psutil.Process] = {}
        for pid in (*self._load_pids, *sorted(self._discovered)):
            for p in self._family(pid, children):
                if p.pid not in taken:
                    generator[p.pid] = p
        tiers["generator"] = list(generator.values())
        return tiers

    # ------------------------------------------------------------------ sampling

    def _account(
        self, tier: str, procs: Iterable[psutil.Process], dt: float | None
    ) -> dict[str, float]:
        cpu_add = runq_add = rss = 0.0
        busiest = 0.0
        count = 0
        for p in procs:
            try:
                with p.oneshot():
                    key = (p.pid, p.create_time())
                    times = p.cpu_times()
                    rss += p.memory_info().rss
                    threads = p.threads()
            except psutil.Error:
                continue
            count += 1
            total = times.user + times.system
            cpu_add += max(0.0, total - self._cpu.get(key, total))
            self._cpu[key] = total
            delay = _run_delay(p.pid)
            runq_add += max(0.0, delay - self._runq.get(key, delay))
            self._runq[key] = delay
            for th in threads:
                tkey = (key, th.id)
                t_total = th.user_time + th.system_time
                previous = self._threads.get(tkey)
                if previous is not None and dt:
                    busiest = max(busiest, (t_total - previous) / dt)
                self._threads[tkey] = t_total
        self._totals[f"cpu.{tier}"] = self._totals.get(f"cpu.{tier}", 0.0) + cpu_add
        self._totals[f"runq.{tier}"] = self._totals.get(f"runq.{tier}", 0.0) + runq_add
        gauges = {f"rss_mb.{tier}": rss / 2**20, f"procs.{tier}": float(count)}
        if dt:
            gauges[f"busiest.{tier}"] = min(busiest, float(self._cores))
        return gauges

    def collect(self) -> Reading:
        wall = time.monotonic()
        dt = wall - self._last_wall if self._last_wall is not None else None
        self._last_wall = wall
        tiers = self.members()
        self._ticks += 1
        gauges: dict[str, float] = {"host.cores": float(self._cores)}
        counters: dict[str, float] = {}
        live: set[Key] = set()
        for tier, procs in tiers.items():
            gauges.update(self._account(tier, procs, dt))
            for p in procs:
                try:
                    live.add((p.pid, p.create_time()))
                except psutil.Error:
                    continue
        cgroups = dict(self._leaders)
        if self._load_pids:  # a generator in a container with a CPU limit is throttled too
            cgroups["generator"] = self._load_pids[0]
        for tier, pid in cgroups.items():
            cg = read_cgroup_cpu(pid)
            if cg is None:
                continue
            counters[f"throttled.{tier}"] = cg.throttled_s
            counters[f"periods.{tier}"] = cg.periods
            counters[f"throttled_periods.{tier}"] = cg.throttled_periods
            if cg.limit_cores is not None:
                gauges[f"cpu_limit.{tier}"] = cg.limit_cores
        self._forget(live)
        counters.update(self._totals)
        host = psutil.cpu_times()
        idle = host.idle + getattr(host, "iowait", 0.0)
        # guest time is already part of user time
        total = sum(host) - getattr(host, "guest", 0.0) - getattr(host, "guest_nice", 0.0)
        counters["host.total"] = total
        counters["host.busy"] = total - idle
        counters["host.steal"] = getattr(host, "steal", 0.0)
        return Reading(gauges=gauges, counters=counters)

    def _forget(self, live: set[Key]) -> None:
        """Bounded memory: drop the bookkeeping of processes that are gone."""
        for key in [k for k in self._cpu if k not in live]:
            self._cpu.pop(key, None)
            self._runq.pop(key, None)
        for tkey in [k for k in self._threads if k[0] not in live]:
            self._threads.pop(tkey, None)
        self._procs = {pid: p for pid, p in self._procs.items() if p.is_running()}

    def close(self) -> None:
        self._procs.clear()

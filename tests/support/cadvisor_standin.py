"""Test support: the stand-in for cAdvisor, because cAdvisor cannot run here.

On Kubernetes the diagnosis takes each tier's CPU and CPU throttling from the kubelet's
cAdvisor (``cpu_source: cadvisor`` in the ``--tiers`` mapping). cAdvisor is not packaged
in Debian 12 and cannot be fetched on this machine, so the tests that need those series
run this instead: a small exporter that reads REAL cgroups (the ones the test made and
moved the tiers' processes into) and serves what cAdvisor serves for them, under its
metric names, units and labels (google/cadvisor ``metrics/prometheus.go``; the labels are
the kubelet's: ``namespace``, ``pod``, ``container``, ``id``, ``image``, ``name``)::

    container_cpu_usage_seconds_total{cpu="total"}  cpuacct.usage / 1e9 (v2: usage_usec / 1e6)
    container_cpu_cfs_periods_total                 cpu.stat nr_periods
    container_cpu_cfs_throttled_periods_total       cpu.stat nr_throttled
    container_cpu_cfs_throttled_seconds_total       throttled_time / 1e9 (v2: throttled_usec / 1e6)
    container_spec_cpu_quota                        cpu.cfs_quota_us (v2: cpu.max), only when set
    container_spec_cpu_period                       cpu.cfs_period_us (v2: cpu.max)

Like the kubelet's, each pod's own cgroup (the parent of its containers') is served too,
with ``container=""``: a mapping that selects by pod alone counts it twice, as it would
on a cluster. Memory, network and file-system series are not served (the diagnosis reads
none of them from cAdvisor but the working set, which it treats as optional).

Run as a program (stdlib only, so the test starts it as its own process and stops it by
pid)::

    python cadvisor_standin.py --port P NAMESPACE/POD/CONTAINER=/cgroup/path ...

``/cgroup/path`` is relative to the hierarchy's root (``/sys/fs/cgroup/cpu`` and
``/sys/fs/cgroup/cpuacct`` for v1, wherever they are mounted; the unified hierarchy for
v2). It answers on ``/metrics/cadvisor`` (the kubelet's path) and ``/metrics``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["Container", "Mounts", "exposition", "find_mounts", "read_cpu"]


@dataclass(frozen=True)
class Container:
    namespace: str
    pod: str
    container: str
    cgroup: str
    """The cgroup path relative to the hierarchy's root, e.g. ``/kh-test/registry-pod/registry``."""

    @classmethod
    def parse(cls, spec: str) -> Container:
        names, sep, cgroup = spec.partition("=")
        parts = names.split("/")
        if not sep or len(parts) != 3 or not all(parts) or not cgroup.startswith("/"):
            raise ValueError(f"{spec!r}: write NAMESPACE/POD/CONTAINER=/cgroup/path")
        return cls(parts[0], parts[1], parts[2], cgroup)


@dataclass(frozen=True)
class Mounts:
    """Where the CPU controllers are: v1 ``cpu`` and ``cpuacct`` (maybe one mount), or v2."""

    cpu: Path
    cpuacct: Path | None
    version: int


def find_mounts(mountinfo: str) -> Mounts:
    """Pure: ``/proc/self/mountinfo`` → the CPU controllers' mount points (v1 first, as
    cAdvisor does when the ``cpu`` controller is on a v1 hierarchy)."""
    cpu: Path | None = None
    cpuacct: Path | None = None
    unified: Path | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, after = left.split(), right.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        point, fstype, options = Path(fields[4]), after[0], after[2].split(",")
        if fstype == "cgroup":
            if "cpu" in options:
                cpu = point
            if "cpuacct" in options:
                cpuacct = point
        elif fstype == "cgroup2":
            unified = point
    if cpu is not None:
        return Mounts(cpu, cpuacct, 1)
    if unified is not None:
        return Mounts(unified, None, 2)
    raise RuntimeError("no cgroup hierarchy with the cpu controller is mounted")


def _stat(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def read_cpu(mounts: Mounts, cgroup: str) -> dict[str, float]:
    """One cgroup's CPU counters as cAdvisor reports them (seconds, microseconds)."""
    rel = cgroup.lstrip("/")
    if mounts.version == 1:
        cpu_dir = mounts.cpu / rel
        acct_dir = (mounts.cpuacct or mounts.cpu) / rel
        stat = _stat((cpu_dir / "cpu.stat").read_text())
        quota = float((cpu_dir / "cpu.cfs_quota_us").read_text())
        period = float((cpu_dir / "cpu.cfs_period_us").read_text())
        usage = float((acct_dir / "cpuacct.usage").read_text()) / 1e9
        throttled = stat.get("throttled_time", 0.0) / 1e9
    else:
        directory = mounts.cpu / rel
        stat = _stat((directory / "cpu.stat").read_text())
        quota_text, _, period_text = (directory / "cpu.max").read_text().strip().partition(" ")
        quota = -1.0 if quota_text == "max" else float(quota_text)
        period = float(period_text or 100_000)
        usage = stat.get("usage_usec", 0.0) / 1e6
        throttled = stat.get("throttled_usec", 0.0) / 1e6
    values = {
        "container_cpu_usage_seconds_total": usage,
        "container_cpu_cfs_periods_total": stat.get("nr_periods", 0.0),
        "container_cpu_cfs_throttled_periods_total": stat.get("nr_throttled", 0.0),
        "container_cpu_cfs_throttled_seconds_total": throttled,
        "container_spec_cpu_period": period,
    }
    if quota > 0:  # cAdvisor leaves an unlimited quota out
        values["container_spec_cpu_quota"] = quota
    return values


HELP = {
    "container_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed in seconds."),
    "container_cpu_cfs_periods_total": (
        "counter",
        "Number of elapsed enforcement period intervals.",
    ),
    "container_cpu_cfs_throttled_periods_total": (
        "counter",
        "Number of throttled period intervals.",
    ),
    "container_cpu_cfs_throttled_seconds_total": (
        "counter",
        "Total time duration the container has been throttled.",
    ),
    "container_spec_cpu_quota": ("gauge", "CPU quota of the container."),
    "container_spec_cpu_period": ("gauge", "CPU period of the container."),
}


def _labels(labels: Mapping[str, str]) -> str:
    inner = ",".join(
        f'{k}="{v}"'.replace("\\", "\\\\").replace("\n", "\\n") for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


def exposition(rows: Sequence[tuple[Mapping[str, str], Mapping[str, float]]]) -> str:
    """Pure: (labels, values) per cgroup → Prometheus' text format, one family at a time."""
    lines: list[str] = []
    for name, (kind, text) in HELP.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for labels, values in rows:
            if name not in values:
                continue
            extra = {"cpu": "total"} if name == "container_cpu_usage_seconds_total" else {}
            lines.append(f"{name}{_labels({**labels, **extra})} {values[name]:.9g}")
    return "\n".join(lines) + "\n"


def scrape(mounts: Mounts, containers: Sequence[Container]) -> str:
    rows: list[tuple[Mapping[str, str], Mapping[str, float]]] = []
    pods: dict[tuple[str, str], str] = {}
    for c in containers:
        labels = {
            "namespace": c.namespace, "pod": c.pod, "container": c.container,
            "id": c.cgroup, "name": c.container, "image": f"keelhaul/{c.container}",
        }  # fmt: skip
        rows.append((labels, read_cpu(mounts, c.cgroup)))
        pods[(c.namespace, c.pod)] = str(Path(c.cgroup).parent)
    for (namespace, pod), cgroup in pods.items():
        if cgroup != "/":
            labels = {"namespace": namespace, "pod": pod, "container": "", "id": cgroup}
            rows.append((labels, read_cpu(mounts, cgroup)))
    return exposition(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="cAdvisor's CPU series for given cgroups")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("containers", nargs="+", metavar="NAMESPACE/POD/CONTAINER=/cgroup")
    args = parser.parse_args(argv)
    try:
        containers = [Container.parse(spec) for spec in args.containers]
        mounts = find_mounts(Path(f"/proc/{os.getpid()}/mountinfo").read_text())
    except (ValueError, RuntimeError) as exc:
        parser.exit(2, f"cadvisor_standin: {exc}\n")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/metrics", "/metrics/cadvisor"):
                self.send_error(404)
                return
            try:
                body = scrape(mounts, containers).encode()
                status = 200
            except OSError as exc:  # a cgroup removed under us: say so, as an exporter would
                body, status = f"cgroup unreadable: {exc.strerror}\n".encode(), 500
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()

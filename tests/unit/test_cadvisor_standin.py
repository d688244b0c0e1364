"""The cAdvisor stand-in's pure parts: where the CPU controllers are, what it reads from a
cgroup's files (v1 and v2, as the kernel writes them), and what it serves. Its served text
is read back through the diagnosis' own Prometheus-series reader, so the names, units and
labels are the ones the Prometheus source expects from the kubelet."""

from __future__ import annotations

from pathlib import Path

import pytest

from keelhaul.diagnose.prom import parse_text
from keelhaul.diagnose.promseries import procs_reading
from support.cadvisor_standin import Container, Mounts, exposition, find_mounts, read_cpu

V1_SPLIT = """\
30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
31 25 0:27 / /sys/fs/cgroup/cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpuacct
40 25 0:35 / /sys/fs/cgroup/unified rw,relatime shared:19 - cgroup2 cgroup2 rw
"""
V1_JOINT = "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
V2 = "28 22 0:25 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_the_cpu_controllers_are_found_however_they_are_mounted() -> None:
    split = find_mounts(V1_SPLIT)
    assert (split.cpu, split.cpuacct, split.version) == (
        Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpuacct"), 1,
    )  # fmt: skip
    joint = find_mounts(V1_JOINT)
    assert joint.cpu == joint.cpuacct == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert find_mounts(V2) == Mounts(Path("/sys/fs/cgroup"), None, 2)
    with pytest.raises(RuntimeError, match="cpu controller"):
        find_mounts("26 22 0:24 / /proc rw - proc proc rw\n")


def _v1(root: Path, quota: str) -> Mounts:
    cpu, acct = root / "cpu" / "g", root / "cpuacct" / "g"
    cpu.mkdir(parents=True)
    acct.mkdir(parents=True)
    (cpu / "cpu.stat").write_text(
        "nr_periods 200\nnr_throttled 150\nthrottled_time 9500000000\nnr_bursts 0\nburst_time 0\n"
    )
    (cpu / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (acct / "cpuacct.usage").write_text("5000000000\n")
    return Mounts(root / "cpu", root / "cpuacct", 1)


def test_v1_counters_in_cadvisor_units(tmp_path: Path) -> None:
    values = read_cpu(_v1(tmp_path, "25000"), "/g")
    assert values == {
        "container_cpu_usage_seconds_total": 5.0,
        "container_cpu_cfs_periods_total": 200,
        "container_cpu_cfs_throttled_periods_total": 150,
        "container_cpu_cfs_throttled_seconds_total": 9.5,
        "container_spec_cpu_period": 100000,
        "container_spec_cpu_quota": 25000,
    }


def test_an_unlimited_quota_is_left_out_like_cadvisor_does(tmp_path: Path) -> None:
    assert "container_spec_cpu_quota" not in read_cpu(_v1(tmp_path, "-1"), "/g")


def test_v2_counters(tmp_path: Path) -> None:
    group = tmp_path / "g"
    group.mkdir()
    (group / "cpu.stat").write_text(
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
        "nr_periods 40\nnr_throttled 10\nthrottled_usec 750000\n"
    )
    (group / "cpu.max").write_text("50000 100000\n")
    values = read_cpu(Mounts(tmp_path, None, 2), "/g")
    assert values["container_cpu_usage_seconds_total"] == 2.5
    assert values["container_cpu_cfs_throttled_seconds_total"] == 0.75
    assert values["container_spec_cpu_quota"] == 50000
    (group / "cpu.max").write_text("max 100000\n")
    assert "container_spec_cpu_quota" not in read_cpu(Mounts(tmp_path, None, 2), "/g")


def test_what_it_serves_reads_back_as_a_throttled_tier(tmp_path: Path) -> None:
    values = read_cpu(_v1(tmp_path, "25000"), "/g")
    labels = {"namespace": "ns", "pod": "registry-7d-x1", "container": "registry", "id": "/g"}
    text = exposition([(labels, values)])
    assert 'container_cpu_usage_seconds_total{container="registry",cpu="total",id="/g"' in text
    samples = parse_text(text)
    gauges, counters = procs_reading("registry", samples, "cadvisor")
    assert gauges["cpu_limit.registry"] == pytest.approx(0.25)
    assert counters["throttled_periods.registry"] == 150
    assert counters["throttled.registry"] == pytest.approx(9.5)
    assert counters["cpu.registry"] == pytest.approx(5.0)


def test_a_container_spec_is_checked() -> None:
    spec = Container.parse("ns/registry-7d-x1/registry=/kh/registry-pod/registry")
    assert (spec.namespace, spec.pod, spec.container) == ("ns", "registry-7d-x1", "registry")
    for bad in ("ns/pod=/g", "ns/pod/c", "ns/pod/c=relative", "ns//c=/g"):
        with pytest.raises(ValueError, match="NAMESPACE/POD/CONTAINER"):
            Container.parse(bad)

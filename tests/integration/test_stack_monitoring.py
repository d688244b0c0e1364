"""``keelhaul stack up --monitoring``: Prometheus and the exporters as real processes.

One stack per module (Prometheus and five exporters take a few seconds to start): the tests
read it, the last one stops it and checks that no process is left, by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from keelhaul.errors import MissingBinaryError
from keelhaul.stack import Stack, StackSettings
from keelhaul.stack.monitoring import TIERS
from keelhaul.stack.procs import is_alive

pytestmark = pytest.mark.integration

JOBS = {"nginx", "auth", "registry", "redis", "node", "process", "prometheus"}
WAIT = 60.0
"""Bound of every wait for Prometheus (it scrapes each second)."""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def _state(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "stack.json").read_text())
    return data


def _descendants(pid: int) -> set[int]:
    """``pid`` and every live process below it (from /proc's parent links)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    family = {pid}
    grew = True
    while grew:
        more = {child for child, parent in parents.items() if parent in family}
        grew = not more <= family
        family |= more
    return {p for p in family if is_alive(p)}


def _kill_leftovers(pids: dict[str, int]) -> None:
    for pid in pids.values():
        for member in _descendants(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("monitored") / "stack"
    pids: dict[str, int] = {}
    try:
        up = cli(
            "stack", "up", "--dir", str(directory), "--monitoring",
            "--auth-workers", "2", "--proxy-workers", "2", "--bcrypt-cost", "4",
        )  # fmt: skip
        if (directory / "stack.json").exists():
            pids = {k: int(v) for k, v in _state(directory)["pids"].items()}
        assert up.returncode == 0, up.stderr
        assert "prometheus" in up.stdout
        yield directory
    finally:
        cli("stack", "down", "--dir", str(directory))
        _kill_leftovers(pids)


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    with httpx.Client(timeout=5, trust_env=False) as client:
        response = client.get(f"{prometheus}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _by(label: str, result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"][label]: float(r["value"][1]) for r in result}


def _wait_for(check: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last[0]:
            return last[1]
        time.sleep(0.5)
    pytest.fail(f"{what} within {WAIT:g} s; last seen: {last[1] if last else None}")


def test_state_records_prometheus_and_its_components(monitored: Path) -> None:
    state = _state(monitored)
    prometheus = state["prometheus"]
    assert prometheus == f"http://127.0.0.1:{state['ports']['prometheus']}"
    monitors = ["node_exporter", "process_exporter", "nginx_exporter", "redis_exporter"]
    assert list(state["pids"]) == ["redis", "auth", "registry", "nginx", *monitors, "prometheus"]
    for name in [*monitors, "prometheus"]:
        assert state["identities"][name]["starttime"] is not None
        assert Path(state["logs"][name]).is_file()
        assert state["urls"][name] == f"http://127.0.0.1:{state['ports'][name]}"
    assert state["settings"]["monitoring"] is True
    scrape = yaml.safe_load(Path(state["config"]["prometheus"]).read_text())
    assert scrape["global"]["scrape_interval"] == "1s"
    assert {job["job_name"] for job in scrape["scrape_configs"]} == JOBS
    check = subprocess.run(
        ["promtool", "check", "config", state["config"]["prometheus"]],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr

    mapping = yaml.safe_load((monitored / "config" / "tiers.yaml").read_text())
    assert mapping["cpu_source"] == "process-exporter"
    assert list(mapping["tiers"]) == list(TIERS)

    status = cli("stack", "status", "--dir", str(monitored), "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    components = json.loads(status.stdout)["components"]
    assert {*monitors, "prometheus"} <= set(components)
    assert all(c["healthy"] for c in components.values())


def test_every_job_is_up(monitored: Path) -> None:
    prometheus = _state(monitored)["prometheus"]

    def all_up() -> tuple[bool, dict[str, float]]:
        up = _by("job", _query(prometheus, "up"))
        return set(up) == JOBS and all(v == 1 for v in up.values()), up

    _wait_for(all_up, "every job up")


def test_process_groups_are_exactly_the_tiers_processes(monitored: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    # another redis-server on this host (the fixture's) must not count as the stack's Redis
    assert is_alive(redis_server.proc.pid)
    state = _state(monitored)
    prometheus = state["prometheus"]
    expected = {tier: len(_descendants(state["pids"][tier])) for tier in TIERS}
    assert expected["nginx"] == 3  # master + 2 workers
    assert expected["auth"] >= 3  # gunicorn master + 2 workers

    def counted() -> tuple[bool, dict[str, float]]:
        procs = _by("groupname", _query(prometheus, "namedprocess_namegroup_num_procs"))
        return procs == {t: float(n) for t, n in expected.items()}, procs

    _wait_for(counted, f"process groups {expected}")


def test_every_tier_carries_cpu_after_traffic(monitored: Path) -> None:
    state = _state(monitored)
    prometheus = state["prometheus"]
    cpu = "sum by (groupname) (namedprocess_namegroup_cpu_seconds_total)"

    def seen() -> tuple[bool, dict[str, float]]:
        values = _by("groupname", _query(prometheus, cpu))
        return set(values) == set(TIERS), values

    before = _wait_for(seen, "CPU of every tier")
    reader = state["users"]["reader"]
    with httpx.Client(timeout=10, trust_env=False) as client:
        for _ in range(50):
            token = client.get(
                f"{state['entry']}/token",
                params={"service": state["service"], "scope": "repository:demo:pull"},
                auth=("reader", reader),
            )
            assert token.status_code == 200
            blob = client.get(
                f"{state['entry']}/v2/demo/blobs/sha256:{'0' * 64}",
                headers={"Authorization": f"Bearer {token.json()['token']}"},
            )
            assert blob.status_code == 404  # through nginx and the registry (Redis cache)

    def grew() -> tuple[bool, dict[str, float]]:
        now = _by("groupname", _query(prometheus, cpu))
        more = {tier: now.get(tier, 0.0) - before[tier] for tier in TIERS}
        return all(v > 0 for v in more.values()), more

    _wait_for(grew, "more CPU for every tier after the traffic")


def test_restart_an_exporter_and_prometheus(monitored: Path) -> None:
    before = _state(monitored)["pids"]
    for name in ("redis_exporter", "prometheus"):
        result = cli("stack", "restart", "--dir", str(monitored), name)
        assert result.returncode == 0, result.stderr
        assert not is_alive(before[name])
    after = _state(monitored)["pids"]
    assert {k for k in after if after[k] != before[k]} == {"redis_exporter", "prometheus"}
    assert cli("stack", "status", "--dir", str(monitored)).returncode == 0


def test_down_leaves_no_process(monitored: Path) -> None:
    state = _state(monitored)
    families = {name: _descendants(pid) for name, pid in state["pids"].items()}
    down = cli("stack", "down", "--dir", str(monitored))
    assert down.returncode == 0, down.stderr
    for name in ("prometheus", "node_exporter", "process_exporter"):
        assert f"{name} (pid {state['pids'][name]})" in down.stdout
    left = {name: [p for p in pids if is_alive(p)] for name, pids in families.items()}
    assert not any(left.values()), left


def test_a_missing_exporter_is_named_with_its_package_before_anything_starts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bin"
    path.mkdir()
    for binary in ("redis-server", "docker-registry", "nginx", "prometheus"):
        found = shutil.which(binary)
        assert found is not None
        (path / binary).symlink_to(found)
    directory = tmp_path / "stack"
    stack = Stack(directory, StackSettings(monitoring=True), environ={"PATH": str(path)})
    with pytest.raises(MissingBinaryError) as caught:
        stack.up()
    assert caught.value.package == "prometheus-node-exporter"
    assert "apt-get install prometheus-node-exporter" in str(caught.value)
    assert not (directory / "stack.json").exists()

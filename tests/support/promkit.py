"""Test support: a real Prometheus (Debian's) that a test starts itself, and a wait for
the targets of any Prometheus (``keelhaul stack up --monitoring``'s too).

The stack's own monitoring is what the acceptance tests diagnose through; this one serves
the tests that need a Prometheus without a stack (bad input, Redis alone). It listens on a
free loopback port, keeps its data in the test's directory, and is stopped by pid.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from keelhaul.netutil import wait_for_port

__all__ = ["Monitoring", "spawn", "start_prometheus", "start_prometheus_with", "wait_for_targets"]


@dataclass
class Monitoring:
    url: str
    directory: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def wait_for_targets(self, jobs: set[str], timeout: float = 30.0) -> None:
        wait_for_targets(self.url, jobs, timeout)


def wait_for_targets(url: str, jobs: set[str], timeout: float = 30.0) -> None:
    """Until every job has a healthy target and a few scrapes are stored."""
    deadline = time.monotonic() + timeout
    healthy: set[str] = set()
    while time.monotonic() < deadline:
        try:
            doc = httpx.get(f"{url}/api/v1/targets", timeout=2, trust_env=False).json()
        except (httpx.HTTPError, ValueError):
            time.sleep(0.3)
            continue
        healthy = {
            t["labels"]["job"] for t in doc["data"]["activeTargets"] if t.get("health") == "up"
        }
        if jobs <= healthy:
            time.sleep(2.5)  # a few scrapes of each
            return
        time.sleep(0.3)
    raise AssertionError(f"targets not up in {timeout} s: {sorted(jobs - healthy)}")


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def start_prometheus(mon: Monitoring, jobs: dict[str, str], interval: str, port: int) -> None:
    """Debian's prometheus scraping ``jobs`` (job → host:port) every ``interval``."""
    scrape_configs = [
        {"job_name": job, "static_configs": [{"targets": [address]}]}
        for job, address in jobs.items()
    ]
    start_prometheus_with(mon, scrape_configs, interval, port)


def start_prometheus_with(
    mon: Monitoring, scrape_configs: list[dict[str, Any]], interval: str, port: int
) -> None:
    """Debian's prometheus with these ``scrape_configs`` (labels, paths...); ``mon.url``
    is set to it."""
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": scrape_configs,
    }
    mon.url = f"http://127.0.0.1:{port}"
    (mon.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    mon.procs.append(
        spawn(
            [
                "prometheus",
                f"--config.file={mon.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={mon.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            mon.directory / "monitoring.log",
        )
    )
    wait_for_port("127.0.0.1", port, timeout=30)

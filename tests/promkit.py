"""Test support: a real Prometheus and the standard exporters around a running local stack.

The tests of the Prometheus source need a Prometheus that scrapes a real stack the way a
monitored deployment is scraped: Debian's ``prometheus`` with the node, process, nginx and
Redis exporters, the registry's debug ``/metrics`` and the token service's ``/metrics``,
with the jobs and process groups of the default tier mapping
(:data:`keelhaul.diagnose.tiermap.LOCAL`). Everything listens on free loopback ports,
lives in a directory of the test's, and is stopped by pid.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from keelhaul.netutil import free_port, wait_for_port

__all__ = ["Monitoring", "spawn", "start_monitoring", "start_prometheus"]


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
        """Until every job has a healthy target and at least two scrapes are stored."""
        deadline = time.monotonic() + timeout
        healthy: set[str] = set()
        while time.monotonic() < deadline:
            try:
                doc = httpx.get(f"{self.url}/api/v1/targets", timeout=2, trust_env=False).json()
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


def _process_groups(stack: dict[str, Any]) -> dict[str, Any]:
    """One process-exporter group per tier, matched on this stack's own command lines
    (other stacks may run on the same machine); workers follow their master (children)."""
    d = re.escape(str(stack["dir"]))
    redis_port = stack["ports"]["redis"]
    return {
        "process_names": [
            {"name": "nginx", "cmdline": [rf"nginx: master process .*-p {d}/nginx/"]},
            {"name": "auth", "cmdline": [rf"keelhaul auth serve --config {d}/config/auth\.yml"]},
            {"name": "registry", "cmdline": [rf"docker-registry serve {d}/config/registry\.yml"]},
            {"name": "redis", "cmdline": [rf"redis-server 127\.0\.0\.1:{redis_port}\b"]},
        ]
    }


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def start_prometheus(mon: Monitoring, jobs: dict[str, str], interval: str, port: int) -> None:
    """Debian's prometheus scraping ``jobs`` (job → host:port) every ``interval``."""
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [address]}]}
            for job, address in jobs.items()
        ],
    }
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


def start_monitoring(stack_dir: Path, workdir: Path, *, interval: str = "1s") -> Monitoring:
    """Exporters and a Prometheus (scrape ``interval``) for the stack in ``stack_dir``."""
    stack = json.loads((stack_dir / "stack.json").read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("prometheus", "node", "process", "nginx", "redis")}
    mon = Monitoring(f"http://127.0.0.1:{ports['prometheus']}", workdir)
    (workdir / "process.yml").write_text(yaml.safe_dump(_process_groups(stack)))
    status = stack["urls"]["nginx_status"].rstrip("/") + "/nginx_status"
    exporters = {
        "node": ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ports['node']}",
                 "--collector.disable-defaults", "--collector.cpu"],
        "process": ["prometheus-process-exporter", "-config.path", str(workdir / "process.yml"),
                    "-web.listen-address", f"127.0.0.1:{ports['process']}", "-threads=false",
                    "-gather-smaps=false"],
        "nginx": ["prometheus-nginx-exporter", "-nginx.scrape-uri", status,
                  "-web.listen-address", f"127.0.0.1:{ports['nginx']}"],
        "redis": ["prometheus-redis-exporter", "-redis.addr", stack["redis_url"],
                  "-web.listen-address", f"127.0.0.1:{ports['redis']}"],
    }  # fmt: skip

    def target(url: str) -> str:
        return url.split("://", 1)[-1].rstrip("/")

    jobs = {
        "node": f"127.0.0.1:{ports['node']}",
        "process": f"127.0.0.1:{ports['process']}",
        "nginx": f"127.0.0.1:{ports['nginx']}",
        "redis": f"127.0.0.1:{ports['redis']}",
        "registry": target(stack["urls"]["registry_debug"]),
        "auth": target(stack["urls"]["auth"]),
        "prometheus": f"127.0.0.1:{ports['prometheus']}",
    }
    try:
        for argv in exporters.values():
            mon.procs.append(spawn(argv, workdir / "monitoring.log"))
        start_prometheus(mon, jobs, interval, ports["prometheus"])
        for port in ports.values():
            wait_for_port("127.0.0.1", port, timeout=30)
    except BaseException:
        mon.stop()
        raise
    return mon

"""The rendered monitoring against the real programs that read it: Debian's ``promtool``
on the scrape configs, Debian's process-exporter on the rendered process groups."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from keelhaul.netutil import free_port, wait_for_port

pytestmark = pytest.mark.integration

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROCESS_EXPORTER = (
    shutil.which("prometheus-process-exporter") or "/usr/bin/prometheus-process-exporter"
)


def keelhaul(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def promtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, "check", "config", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rendered")
    dirs = {}
    for target in ("compose", "k8s"):
        result = keelhaul(
            "stack", "render", "--target", target, "--out", str(out / target),
            "--monitoring", "--namespace", "keelhaul", "--bcrypt-cost", "4",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"wrote {out / target / 'tiers.yaml'}" in result.stdout
        assert f"--tiers {out / target / 'tiers.yaml'}" in result.stdout
        dirs[target] = out / target
    return dirs


def test_promtool_accepts_the_compose_scrape_config(rendered: dict[str, Path]) -> None:
    result = promtool_check(rendered["compose"] / "config" / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_cluster_scrape_config(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    """Debian builds Prometheus without Kubernetes discovery, so its promtool rejects
    ``kubernetes_sd_configs`` itself: everything else (relabelling regexes and actions,
    TLS and authorization, intervals) is checked with a static target in its place."""
    config: dict[str, Any] = yaml.safe_load(
        (rendered["k8s"] / "config" / "prometheus.yml").read_text()
    )
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]
    sa = tmp_path / "sa"
    sa.mkdir()
    for job in config["scrape_configs"]:
        if "tls_config" in job:  # the pod's service-account files, here as empty files
            for key, section in (("ca_file", "tls_config"), ("credentials_file", "authorization")):
                local = sa / Path(job[section][key]).name
                local.write_text("")
                job[section][key] = str(local)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = promtool_check(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_process_exporter_reads_the_rendered_groups(rendered: dict[str, Path]) -> None:
    port = free_port()
    config = rendered["compose"] / "config" / "process-exporter.yml"
    log = rendered["compose"] / "process-exporter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PROCESS_EXPORTER, f"-web.listen-address=127.0.0.1:{port}", f"-config.path={config}",
             "-gather-smaps=false"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        assert wait_for_port("127.0.0.1", port, 15), log.read_text()
        with httpx.Client(timeout=5, trust_env=False) as client:
            metrics = client.get(f"http://127.0.0.1:{port}/metrics")
        assert metrics.status_code == 200
        assert "namedprocess_scrape_errors" in metrics.text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

"""``keelhaul diagnose --prometheus`` and ``keelhaul load --diagnose --prometheus`` given bad
input: one line on stderr, a non-zero exit, no traceback, nothing waited for in vain.

A real Prometheus (Debian's, scraping itself every second) answers the cases that need
one: a mapping that selects nothing, a window shorter than two scrapes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keelhaul.netutil import free_port
from support.promkit import Monitoring, start_prometheus
from support.stacks import clean_env, keelhaul

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    mon = Monitoring(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("prom"))
    try:
        start_prometheus(mon, {"prometheus": f"127.0.0.1:{port}"}, "1s", port)
        mon.wait_for_targets({"prometheus"})
        yield mon.url
    finally:
        mon.stop()


def one_line_error(done: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    progress = "keelhaul diagnose: "  # what it is doing, before the error
    lines = [ln for ln in done.stderr.strip().splitlines() if not ln.startswith(progress)]
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert says in lines[0], lines[0]


def test_an_unreachable_prometheus(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    done = keelhaul("diagnose", "--prometheus", f"http://127.0.0.1:{port}", "--duration", "30")
    one_line_error(done, 7, f"cannot reach Prometheus at http://127.0.0.1:{port}")
    assert time.monotonic() - started < 25  # refused before watching the 30 s


def test_a_wrong_mapping_file(tmp_path: Path, prometheus: str) -> None:
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text("version: 1\ntiers: {proxy: {cpu: 'groupname=\"nginx\"'}}\n")
    done = keelhaul("diagnose", "--prometheus", prometheus, "--tiers", str(tiers))
    one_line_error(done, 7, "tiers: unknown tier(s) proxy")


def test_a_mapping_that_selects_nothing(tmp_path: Path, prometheus: str) -> None:
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(
        "version: 1\ntiers:\n  registry: {cpu: 'groupname=\"none\"', metrics: 'job=\"none\"'}\n"
    )
    now = time.time()
    done = keelhaul(
        "diagnose", "--prometheus", prometheus, "--tiers", str(tiers),
        "--window", f"{now - 20:.0f}..{now:.0f}",
    )  # fmt: skip
    one_line_error(done, 7, "returned no series for any tier")


def test_a_window_shorter_than_two_scrapes(prometheus: str) -> None:
    now = time.time()
    done = keelhaul("diagnose", "--prometheus", prometheus, "--window", f"{now - 1:.1f}..{now:.1f}")
    one_line_error(done, 7, "shorter than two scrapes")


def test_a_window_that_does_not_parse(prometheus: str) -> None:
    done = keelhaul("diagnose", "--prometheus", prometheus, "--window", "yesterday")
    one_line_error(done, 7, "--window 'yesterday': write START..END")


def test_prometheus_options_without_prometheus_are_usage_errors(tmp_path: Path) -> None:
    done = keelhaul("diagnose", "--window", "1..100")
    assert done.returncode == 2 and "--tiers and --window go with --prometheus" in done.stderr
    assert "Traceback" not in done.stderr
    done = keelhaul("diagnose", "--dir", str(tmp_path), "--prometheus")
    assert done.returncode == 2, done.stderr
    assert "records no Prometheus" in done.stderr


def test_load_refuses_a_bad_prometheus_url_before_running() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "keelhaul", "load", "--target", "http://127.0.0.1:9",
         "--diagnose", "--prometheus", "127.0.0.1:9090", "--run-time", "2s"],
        capture_output=True, text=True, env=clean_env(), timeout=60, check=False,
    )  # fmt: skip
    one_line_error(done, 7, "is not an http(s) URL")

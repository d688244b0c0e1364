"""A real distributed Locust run: merged statistics equal the workers' statistics, exactly.

A master and two workers run in one subprocess (``load_merge_probe.py``; importing Locust
monkey-patches the process with gevent, which must not happen to the pytest process)
against a real HTTP server on a free loopback port. The run is stopped while its users are
still busy, so the last samples reach the master in the workers' end-of-run reports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keelhaul.netutil import free_port, wait_for_port

pytestmark = pytest.mark.integration

PROBE = Path(__file__).with_name("load_merge_probe.py")
STAGES = ("ping", "blob GET", "manifest GET")
FIELDS = ("count", "failures", "bytes")
ALL_ITERATIONS = 4 * (400 * 2 + 40)  # USERS * requests per user in load_merge_probe.py


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m http.server`` on a free loopback port, serving a 600-byte index."""
    tmp_path = tmp_path_factory.mktemp("www")
    (tmp_path / "index.html").write_text("x" * 600)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 10), "http.server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def run(http_server: str) -> dict[str, Any]:
    """One distributed run, shared by the tests below (KEELHAUL_* scrubbed by hand: the
    autouse fixture is function-scoped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    result = subprocess.run(
        [sys.executable, str(PROBE), http_server],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_merged_counts_are_the_sums_of_the_workers(run: dict[str, Any]) -> None:
    assert run["final_reports"] is True, "a worker's end-of-run report never arrived"
    master, workers = run["master"], run["workers"]
    assert len(workers) == 2
    for stage in (*STAGES, "Aggregated"):
        for field in FIELDS:
            assert master[stage][field] == sum(w[stage][field] for w in workers), (stage, field)
        # each worker did a share of the work
        assert all(w[stage]["count"] > 0 for w in workers), stage
    # and the workers' RunStats saw every request their users made
    assert {s: master[s]["count"] for s in STAGES} == run["samples"]
    # Locust's own distributed statistics agree
    assert master["Aggregated"]["count"] == run["locust_master_total"]
    assert master["Aggregated"]["failures"] == run["locust_master_failures"]
    assert master["manifest GET"]["failures"] == master["manifest GET"]["count"]  # all 404
    # the bytes of blob GET are the caller's context["bytes"], not the response's length
    assert master["blob GET"]["bytes"] == 1234 * master["blob GET"]["count"]
    assert master["ping"]["bytes"] == 600 * master["ping"]["count"]


def test_merged_percentiles_are_those_of_all_samples(run: dict[str, Any]) -> None:
    master = run["master"]
    # every stage and the aggregate were compared: an empty result cannot pass
    assert set(run["union_percentiles_us"]) == {*STAGES, "Aggregated"}
    for stage, expected_us in run["union_percentiles_us"].items():
        keys = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms")
        assert [round(master[stage][k] * 1000) for k in keys] == expected_us, stage


def test_nothing_lost_or_counted_twice_at_the_end(run: dict[str, Any]) -> None:
    # stopped mid-run (the users had iterations left), yet every sample made it
    assert sum(run["samples"].values()) < ALL_ITERATIONS
    assert run["samples_at_stop"] <= sum(run["samples"].values())
    assert run["lost_deltas"] == 0
    assert run["duplicate_deltas"] == 0
    # the workers' reports on quit (after the final ones) added nothing
    assert run["master"] == run["master_before_quit"]
    # per second and per error message, too
    assert run["timeline_equal"] is True
    assert run["timeline_points"] > 0
    assert run["errors_equal"] is True
    [(stage, message, count)] = run["errors"]
    assert stage == "manifest GET"
    assert "404" in message
    assert count == run["master"]["manifest GET"]["failures"]

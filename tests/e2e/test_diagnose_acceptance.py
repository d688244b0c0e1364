"""Issue #6's acceptance: stacks built with a known bottleneck, and the verdict must name it.

Each test starts a real stack with the knobs that create one bottleneck (or perturbs a
running one: a Redis busy with a slow script, a registry under a CPU quota), drives load
at it with ``hey`` (Debian's, bounded by ``-z``) or ``keelhaul load``, and runs
``keelhaul diagnose`` as a user would. The diagnosis never sees the knobs: ``stack.json``
tells it where things are, the verdict comes from what it measures. Every process a test
starts is stopped by pid; load stays on loopback and within ~15 s per scenario.

Issue #11: every stack runs with ``--monitoring`` (Debian's Prometheus scraping every tier
and the node, process, nginx and Redis exporters each second), and every scenario is
diagnosed twice over the same seconds, by the local source and through that Prometheus;
both must name the same tier. The Prometheus run treats the stack as remote: it is given
only the Prometheus URL and the load generator's pid. The same bottlenecks driven by the
load kit (``keelhaul load --target --diagnose --prometheus``) instead of ``hey``:
``test_diagnose_load_prometheus.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.diagnosis import (
    busy_redis,
    cpu_starved,
    load_through_prometheus,
    read_report,
    stack_prometheus,
    start_cli,
    verdict_text,
)
from support.heyload import hey as run_hey
from support.stacks import StackInfo, clean_env, keelhaul, running_stack

pytestmark = pytest.mark.e2e

WATCH_S = 10
WARMUP_S = 1.5
SERVICE = "keelhaul-registry"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def hey_binary() -> str:
    found = shutil.which("hey")
    if found is None:
        pytest.fail("hey is missing: apt-get install hey", pytrace=False)
    return found


def hey(
    binary: str, url: str, *, headers: Sequence[str], concurrency: int, rate: float | None = None
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """Load for the warm-up and the watch (plus a margin), stopped by pid in any case."""
    del binary  # found by the fixture, so a missing hey fails once, before any stack starts
    return run_hey(
        url, headers=headers, concurrency=concurrency, rate=rate,
        seconds=WARMUP_S + WATCH_S + 4, warmup=WARMUP_S,
    )  # fmt: skip


def basic(info: StackInfo, user: str = "admin") -> str:
    token = base64.b64encode(f"{user}:{info.password(user)}".encode()).decode()
    return f"Authorization: Basic {token}"


def token_url(info: StackInfo, repo: str = "admin/app") -> str:
    return f"{info.entry}/token?service={SERVICE}&scope=repository:{repo}:pull"


@contextlib.contextmanager
def monitored(info: StackInfo) -> Iterator[str]:
    """The Prometheus of a stack started with ``--monitoring``, every job scraped."""
    yield stack_prometheus(info)


def diagnose(
    info: StackInfo, out: Path, *extra: str, prometheus: str | None = None
) -> dict[str, Any]:
    """The local diagnosis; with ``prometheus``, the same seconds through it too, and the
    two must name the same tier (the Prometheus document is under ``"through_prometheus"``)."""
    report = out / f"diagnosis-{uuid.uuid4().hex[:6]}.json"
    local = start_cli(
        "diagnose", "--dir", str(info.dir), "--duration", str(WATCH_S),
        "--json", str(report), "--html", str(report.with_suffix(".html")), *extra,
    )  # fmt: skip
    remote = None
    if prometheus is not None:
        pids = [a for i, a in enumerate(extra) if i and extra[i - 1] == "--load-pid"]
        remote_report = report.with_name(report.stem + "-prometheus.json")
        remote = start_cli(
            "diagnose", "--prometheus", prometheus, "--duration", str(WATCH_S),
            "--json", str(remote_report), "--html", str(remote_report.with_suffix(".html")),
            *(a for pid in pids for a in ("--load-pid", pid)),
        )  # fmt: skip
    try:
        doc = read_report(local, report)
        if remote is not None:
            prom = read_report(remote, remote_report)
            assert prom["source"]["kind"] == "prometheus"
            assert prom["source"]["resolution_s"] == pytest.approx(1.0, abs=0.05)
            assert prom["source"]["unseen"] == []
            assert prom["verdict"]["tier"] == doc["verdict"]["tier"], (
                f"local: {verdict_text(doc)}\n--- through Prometheus: {verdict_text(prom)}"
            )
            doc["through_prometheus"] = prom
    finally:
        for proc in (local, remote):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return doc


# --- 1-3: the token service and the proxy, each built wrong on purpose ---------------------


def test_one_sync_worker_saturates_the_token_service_workers(
    tmp_path: Path, hey_binary: str
) -> None:
    knobs = ("--auth-workers", "1", "--auth-worker-class", "sync")
    with (
        running_stack(tmp_path / "s", *knobs, "--monitoring") as info,
        monitored(info) as prometheus,
        hey(hey_binary, token_url(info), headers=[basic(info)], concurrency=16) as load,
    ):
        doc = diagnose(info, tmp_path, "--load-pid", str(load.pid), prometheus=prometheus)
    assert doc["verdict"]["tier"] == "token_workers", verdict_text(doc)
    auth = doc["signals"]["token_service"]
    assert auth["workers"] == 1 and auth["slots_full_share"] >= 0.5
    assert doc["signals"]["tiers"]["generator"]["procs"] >= 1  # hey, watched


def test_bcrypt_cost_12_without_cache_is_token_service_cpu_in_password_hashing(
    tmp_path: Path, hey_binary: str
) -> None:
    knobs = ("--no-credential-cache", "--bcrypt-cost", "12")
    with (
        running_stack(tmp_path / "s", *knobs, "--monitoring") as info,
        monitored(info) as prometheus,
        hey(hey_binary, token_url(info), headers=[basic(info)], concurrency=8) as load,
    ):
        doc = diagnose(
            info, tmp_path, "--load-pid", str(load.pid), "--profile", prometheus=prometheus
        )
    assert doc["verdict"]["tier"] == "token_cpu", verdict_text(doc)
    profile = doc["profile"]
    path = [step["function"] for step in profile["summary"]["hottest_path"]]
    assert path[-1] == "bcrypt.checkpw [native]", path
    assert "bcrypt" in profile["hotspot"]["function"]
    assert "bcrypt.checkpw" in doc["verdict"]["title"]
    assert profile["svg"].lstrip().startswith("<?xml") or "<svg" in profile["svg"]


def test_one_nginx_worker_with_few_connections_is_the_proxy(
    tmp_path: Path, hey_binary: str
) -> None:
    knobs = ("--proxy-workers", "1", "--proxy-connections", "16")
    with (
        running_stack(tmp_path / "s", *knobs, "--monitoring") as info,
        monitored(info) as prometheus,
        hey(hey_binary, token_url(info), headers=[basic(info)], concurrency=64) as load,
    ):
        doc = diagnose(info, tmp_path, "--load-pid", str(load.pid), prometheus=prometheus)
    assert doc["verdict"]["tier"] == "proxy", verdict_text(doc)
    proxy = doc["signals"]["proxy"]
    assert proxy["conn_exhausted"] > 0 or proxy["dropped"] > 0


# --- 4-6: one healthy stack, then Redis made slow, then the registry starved of CPU -------


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    directory = tmp_path_factory.mktemp("healthy")
    with running_stack(directory / "s", "--monitoring") as info:
        work = directory / "image"
        built = keelhaul("image", "build", str(work), "--layers", "2", "--layer-size", "64KiB")
        assert built.returncode == 0, built.stderr
        env = clean_env(
            {
                "KEELHAUL_REGISTRY_USERNAME": "admin",
                "KEELHAUL_REGISTRY_PASSWORD": info.password("admin"),
            }
        )
        pushed = keelhaul(
            "image", "push", str(work), f"{info.entry_host}/admin/app:1", "--plain-http", env=env
        )
        assert pushed.returncode == 0, pushed.stderr
        yield info


@pytest.fixture(scope="module")
def healthy_prometheus(healthy: StackInfo) -> Iterator[str]:
    with monitored(healthy) as url:
        yield url


def bearer(info: StackInfo) -> str:
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.get(token_url(info), auth=("admin", info.password("admin")))
    response.raise_for_status()
    return f"Authorization: Bearer {response.json()['token']}"


def manifest_url(info: StackInfo) -> str:
    return f"{info.entry}/v2/admin/app/manifests/1"


def test_light_load_on_a_healthy_stack_finds_no_server_side_bottleneck(
    healthy: StackInfo, healthy_prometheus: str, tmp_path: Path
) -> None:
    """Through the load kit: ``keelhaul load --diagnose``, an open model at 15 logins/s;
    then the same load with ``--target <entry> --diagnose --prometheus``: the same verdict."""
    out = tmp_path / "diagnosis"
    done = keelhaul(
        "load", "--stack-dir", str(healthy.dir), "--mix", "login=1", "--rate", "15/s",
        "--users", "10", "--run-time", f"{WATCH_S}s", "--images", "1", "--layer-size", "64k",
        "--diagnose", "--diagnose-dir", str(out), "--print-every", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # issue #17: the progress lines say how long the diagnosis has watched and, once its
    # agent has written progress.json (every 5 s), the tier with the highest CPU demand
    progress = [x for x in done.stderr.splitlines() if x.startswith("keelhaul load: progress ")]
    assert progress and all(" diagnosis=" in x for x in progress), done.stderr
    assert any(" diagnosis_top=" in x for x in progress), progress
    doc = json.loads((out / "diagnosis.json").read_text())
    assert doc["verdict"]["tier"] in ("none", "load_generator"), verdict_text(doc)
    token = next(w for w in doc["waterfalls"] if w["stage"] == "token")
    assert token["observer"] == "client"  # the load kit's own numbers start the waterfall
    assert token["segments"][0]["name"] == "client: connect, queue, network"
    assert "verdict: " in done.stdout
    assert (out / "diagnosis.html").stat().st_size > 10_000
    remote = load_through_prometheus(
        healthy, healthy_prometheus, tmp_path / "through-prometheus",
        "--mix", "login=1", "--rate", "15/s", "--users", "10", run_s=WATCH_S,
    ).doc  # fmt: skip
    assert remote["verdict"]["tier"] == doc["verdict"]["tier"], verdict_text(remote)
    token = next(w for w in remote["waterfalls"] if w["stage"] == "token")
    assert token["observer"] == "client"


def test_a_redis_busy_with_a_slow_script_is_named(
    healthy: StackInfo, healthy_prometheus: str, tmp_path: Path, hey_binary: str
) -> None:
    redis_url = healthy.raw["redis_url"]
    headers = [bearer(healthy), f"Accept: {MANIFEST}"]
    with (
        busy_redis(redis_url, WARMUP_S + WATCH_S + 10),
        hey(hey_binary, manifest_url(healthy), headers=headers, concurrency=16) as load,
    ):
        doc = diagnose(
            healthy, tmp_path, "--load-pid", str(load.pid), prometheus=healthy_prometheus
        )
    assert doc["verdict"]["tier"] == "redis", verdict_text(doc)
    top = doc["signals"]["redis"]["top_commands"][0]
    assert top["command"] == "eval"


def test_a_registry_starved_of_cpu_is_named(
    healthy: StackInfo, healthy_prometheus: str, tmp_path: Path, hey_binary: str
) -> None:
    headers = [bearer(healthy), f"Accept: {MANIFEST}"]
    with (
        cpu_starved(healthy.pids["registry"]) as how,
        hey(hey_binary, manifest_url(healthy), headers=headers, concurrency=16) as load,
    ):
        doc = diagnose(
            healthy, tmp_path, "--load-pid", str(load.pid), prometheus=healthy_prometheus
        )
    assert doc["verdict"]["tier"] == "registry", verdict_text(doc)
    if how == "cgroup":
        assert doc["signals"]["tiers"]["registry"]["throttled_share"] >= 0.2
        assert "cgroup" in doc["verdict"]["title"]


def test_profile_command_writes_a_call_graph(
    healthy: StackInfo, tmp_path: Path, hey_binary: str
) -> None:
    """``keelhaul profile`` alone: the warm token path under load, as an SVG call graph."""
    svg, dot = tmp_path / "callgraph.svg", tmp_path / "callgraph.dot"
    with hey(hey_binary, token_url(healthy), headers=[basic(healthy)], concurrency=8):
        done = keelhaul(
            "profile", "--dir", str(healthy.dir), "--duration", "4",
            "--out", str(svg), "--dot", str(dot),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "hottest path:" in done.stdout
    path = done.stdout.split("hottest path:", 1)[1].splitlines()
    assert sum(1 for line in path if "%" in line) >= 3  # from the worker's loop down
    assert svg.read_text().lstrip().startswith("<?xml")
    assert dot.read_text().startswith("digraph callgraph {")

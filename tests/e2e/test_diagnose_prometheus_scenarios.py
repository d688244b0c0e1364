"""Issue #11's own scenarios: what only the Prometheus path sees, end to end.

1. A tier under a CPU quota, seen through cAdvisor's throttling counters: the registry,
   then the token service. The stack runs as it would on Kubernetes as far as the
   diagnosis can tell: each tier's processes in a cgroup of its own (a pod's cgroup with
   the tier's container inside, the real kernel's CFS quota on the tier's), the
   kubelet's cAdvisor series served by ``support.cadvisor_standin`` (cAdvisor itself
   cannot run here; the stand-in reads the same real cgroups and serves cAdvisor's names,
   units and labels), the tiers' own metrics scraped by a "cluster" Prometheus labelled
   as the rendered pod discovery labels them, and the mapping file is the one
   ``keelhaul stack render --target k8s`` writes.
2. A healthy stack whose load generator is the limit: ``keelhaul load`` run in a cgroup
   with a small CPU quota (a load pod with a CPU limit), cheap requests the stack serves
   with ease; ``load --target <entry> --diagnose --prometheus`` must name the generator.

Every process is stopped by pid, every cgroup emptied and removed; load stays on
loopback and within ~20 s per scenario.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from keelhaul.netutil import free_port, wait_for_port
from support import cadvisor_standin
from support.cgroups import CpuGroups, available, cpu_groups, family
from support.diagnosis import load_through_prometheus, stack_prometheus, verdict_text
from support.heyload import hey
from support.promkit import Monitoring, spawn, start_prometheus_with, wait_for_targets
from support.stacks import StackInfo, keelhaul, running_stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not available(), reason="needs a writable CPU cgroup hierarchy (root)"),
]

WATCH_S = 10
WARMUP_S = 2.0
SERVICE = "keelhaul-registry"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
NAMESPACE = "registry-prod"
TIERS = ("nginx", "auth", "registry", "redis")
QUOTA = 0.25


def assert_throttled_verdict(doc: Mapping[str, Any], verdict: str, tier: str, quota: float) -> None:
    """Read through Prometheus, every tier seen, and ``verdict`` named for ``tier``'s CPU
    quota, with the throttling counters as evidence."""
    assert doc["source"]["kind"] == "prometheus" and doc["source"]["unseen"] == []
    assert doc["verdict"]["tier"] == verdict, verdict_text(doc)
    assert "cgroup quota" in doc["verdict"]["title"], verdict_text(doc)
    assert any("throttled in" in e for e in doc["verdict"]["evidence"]), verdict_text(doc)
    signals = doc["signals"]["tiers"][tier]
    assert signals["cpu_limit"] == pytest.approx(quota)
    assert signals["throttled_share"] >= 0.2


# --- 1: a tier under a CPU quota, through cAdvisor's series -------------------------


def pod_name(tier: str) -> str:
    """A Deployment's pod name: ``<deployment>-<replicaset hash>-<suffix>``."""
    return f"{tier}-7d4b9c6f8-{uuid.uuid4().hex[:5]}"


@contextlib.contextmanager
def tiers_in_pods(
    groups: CpuGroups,
    info: StackInfo,
    quotas: Mapping[str, float],
    requests: float | None = None,
) -> Iterator[list[cadvisor_standin.Container]]:
    """Each tier's processes (leader and workers) in ``<tier>-pod/<tier>``, like a pod's
    container; the quota (CPUs) on the container's group where ``quotas`` says so, and
    every tier's CPU weight as for a pod requesting ``requests`` CPUs."""
    containers = []
    for tier in TIERS:
        rel = groups.make(f"{tier}-pod/{tier}", quotas.get(tier), requests)
        groups.move(rel, family(info.pids[tier]))
        containers.append(cadvisor_standin.Container(NAMESPACE, pod_name(tier), tier, rel))
    yield containers


@contextlib.contextmanager
def cluster_prometheus(
    info: StackInfo, containers: list[cadvisor_standin.Container], directory: Path
) -> Iterator[str]:
    """The stand-in kubelet (cAdvisor on ``/metrics/cadvisor``) and a Prometheus that
    scrapes it and the tiers' own metrics, each target labelled as the rendered pod
    discovery labels it (``namespace``, ``pod``, ``app_kubernetes_io_name``, job = tier)."""
    directory.mkdir(parents=True)
    mon = Monitoring(url="", directory=directory)
    try:
        port = free_port()
        standin = Path(cadvisor_standin.__file__)
        specs = [f"{c.namespace}/{c.pod}/{c.container}={c.cgroup}" for c in containers]
        argv = [sys.executable, str(standin), "--port", str(port), *specs]
        mon.procs.append(spawn(argv, directory / "cadvisor.log"))
        wait_for_port("127.0.0.1", port, timeout=15)
        stack_jobs = yaml.safe_load((info.dir / "config" / "prometheus.yml").read_text())
        pods = {c.container: c.pod for c in containers}
        jobs: list[dict[str, Any]] = [
            {
                "job_name": "kubernetes-cadvisor",
                "metrics_path": "/metrics/cadvisor",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        ]
        for job in stack_jobs["scrape_configs"]:
            tier = job["job_name"]
            if tier not in pods:
                continue
            labels = {
                "namespace": NAMESPACE,
                "pod": pods[tier],
                "app_kubernetes_io_name": tier,
                "app_kubernetes_io_part_of": "keelhaul",
            }
            targets = job["static_configs"][0]["targets"]
            jobs.append(
                {
                    "job_name": tier,
                    "metrics_path": job.get("metrics_path", "/metrics"),
                    "static_configs": [{"targets": targets, "labels": labels}],
                }
            )
        start_prometheus_with(mon, jobs, "1s", free_port())
        wait_for_targets(mon.url, {"kubernetes-cadvisor", *TIERS})
        yield mon.url
    finally:
        mon.stop()


def bearer(info: StackInfo) -> str:
    url = f"{info.entry}/token?service={SERVICE}&scope=repository:admin/app:pull"
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.get(url, auth=("admin", info.password("admin")))
    response.raise_for_status()
    return f"Authorization: Bearer {response.json()['token']}"


def rendered_tiers(out: Path) -> Path:
    """The mapping file ``keelhaul stack render --target k8s --monitoring`` writes."""
    done = keelhaul(
        "stack", "render", "--target", "k8s", "--monitoring",
        "--namespace", NAMESPACE, "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    mapping = yaml.safe_load((out / "tiers.yaml").read_text())
    assert mapping["cpu_source"] == "cadvisor"
    return out / "tiers.yaml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """One monitored stack for both scenarios (the first puts its tiers back as found)."""
    with running_stack(tmp_path_factory.mktemp("stack") / "s", "--monitoring") as info:
        yield info


def diagnose_under_quota(
    info: StackInfo, tmp_path: Path, tier: str, url: str, headers: list[str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``tier`` alone under a CPU quota of QUOTA in a pod-like group, the others in groups
    of their own; ``hey`` on ``url`` while ``keelhaul diagnose --prometheus`` watches
    through the cluster Prometheus and the rendered mapping. The run's output and report."""
    tiers = rendered_tiers(tmp_path / "render")
    report = tmp_path / "diagnosis.json"
    with (
        cpu_groups() as groups,
        tiers_in_pods(groups, info, {tier: QUOTA}) as containers,
        cluster_prometheus(info, containers, tmp_path / "cluster") as prometheus,
        hey(
            url, headers=headers, concurrency=16, seconds=WARMUP_S + WATCH_S + 6, warmup=WARMUP_S
        ) as load,
    ):
        done = keelhaul(
            "diagnose", "--prometheus", prometheus, "--tiers", str(tiers),
            "--duration", str(WATCH_S), "--load-pid", str(load.pid),
            "--json", str(report), "--html", str(report.with_suffix(".html")),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("verdict: ")
    doc = json.loads(report.read_text())
    for other in set(TIERS) - {tier}:  # seen, with no limit: their own cgroups
        assert doc["signals"]["tiers"][other]["cpu_limit"] is None
        assert doc["signals"]["tiers"][other]["procs"] >= 1
    return done, doc


def test_a_registry_under_a_cpu_quota_is_named_through_cadvisor_throttling(
    stack: StackInfo, tmp_path: Path
) -> None:
    # nothing pushed: the registry answers 404 (MANIFEST_UNKNOWN) after verifying the
    # token, which is CPU in the registry all the same
    url = f"{stack.entry}/v2/admin/app/manifests/1"
    _, doc = diagnose_under_quota(
        stack, tmp_path, "registry", url, [bearer(stack), f"Accept: {MANIFEST}"]
    )
    assert_throttled_verdict(doc, "registry", "registry", QUOTA)


def test_a_token_service_under_a_cpu_quota_is_named_through_cadvisor_throttling(
    stack: StackInfo, tmp_path: Path
) -> None:
    """Logins through the entry point (answered from the credential cache: signing and
    the ACL are the CPU) with the token service's pod limited to QUOTA: named for its
    quota, not for its workers (more of them would share the same quota)."""
    basic = base64.b64encode(f"admin:{stack.password('admin')}".encode()).decode()
    url = f"{stack.entry}/token?service={SERVICE}&scope=repository:admin/app:pull,push"
    _, doc = diagnose_under_quota(stack, tmp_path, "auth", url, [f"Authorization: Basic {basic}"])
    assert_throttled_verdict(doc, "token_cpu", "auth", QUOTA)
    assert not any(f["tier"] == "token_workers" for f in doc["verdict"]["findings"])


# --- 2: a healthy stack, the load generator under a CPU quota is the limit ----------------

GENERATOR_QUOTA = 0.05
STACK_REQUESTS = 8.0


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.1)


def test_a_generator_under_a_cpu_quota_is_the_limit_through_prometheus(
    stack: StackInfo, tmp_path: Path
) -> None:
    """``keelhaul load`` in a pod-like group whose CPU limit is cut to 0.05 CPU while the
    run lasts, 20 users logging in as fast as they can (small answers the token service
    serves from its credential cache): the stack could serve far more, the generator
    cannot offer it. (The limit is lifted around the run only so that starting Python and analysing
    afterwards do not take minutes at 0.05 CPU; the diagnosis window is the run's.)

    The stack's tiers run in pod-like groups with the CPU weight of pods requesting 8 CPUs
    each, as a cluster's guaranteed pods have: on this shared 2-CPU machine the other
    processes would otherwise starve the stack itself and make it, honestly, the limit.
    The stack is remote to the run: entry URL, credentials on stdin, its Prometheus; no
    stack directory, no pid, no file of it."""
    prometheus = stack_prometheus(stack)
    out = tmp_path / "diagnosis"
    with (
        cpu_groups() as groups,
        tiers_in_pods(groups, stack, {}, requests=STACK_REQUESTS),
    ):
        rel = groups.make("loadgen-pod/load")
        enter = "; ".join(f"echo $$ > {f}" for f in groups.procs_files(rel))

        def limited_while_it_runs() -> None:
            wait_for_file(out / "agent" / "ready")  # its sampler too: then the limit
            groups.limit(rel, GENERATOR_QUOTA)
            time.sleep(WATCH_S - 2)
            groups.limit(rel, None)

        run = load_through_prometheus(
            stack, prometheus, out, "--mix", "login=1", "--users", "20", run_s=WATCH_S,
            within=("sh", "-c", f'{enter}; exec "$@"', "load-in-pod"),
            at_start=limited_while_it_runs,
        )  # fmt: skip
    assert_throttled_verdict(run.doc, "load_generator", "generator", GENERATOR_QUOTA)

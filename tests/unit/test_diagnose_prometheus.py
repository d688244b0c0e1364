"""The Prometheus source's translation (PromQL results → the engine's signals), pure.

``data/prometheus-token-load.json`` was recorded from a real Prometheus 2.42 (Debian)
scraping a real ``keelhaul stack up`` at 1 s with Debian's node, process, nginx and Redis
exporters while ``hey -c 8`` asked the entry point for tokens (about 200 requests/s for
10 s): the ``query_range`` answers of :func:`promseries.queries` for the default mapping,
keyed ``kind/tier``.
The cAdvisor tests build matrices in cAdvisor's series shape (no kubelet runs here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from keelhaul.diagnose.analysis import analyse
from keelhaul.diagnose.loadreport import ClientRun
from keelhaul.diagnose.model import Reading, Tick
from keelhaul.diagnose.promapi import check_url
from keelhaul.diagnose.promrun import parse_window
from keelhaul.diagnose.promseries import (
    SCRAPE,
    Query,
    build_collection,
    merge_local,
    queries,
    spacing,
)
from keelhaul.diagnose.report_html import render_html
from keelhaul.diagnose.report_json import build_document, dumps
from keelhaul.diagnose.rules import SAMPLED
from keelhaul.diagnose.signals import ClientStage, derive
from keelhaul.diagnose.sources import SourceInfo, cap_confidence, resolution_cap
from keelhaul.diagnose.tiermap import LOCAL, TierMap, load_tier_map
from keelhaul.diagnose.verdict import decide
from keelhaul.errors import DiagnoseError
from keelhaul.stack.render import DeploySettings, plan_for
from keelhaul.stack.render.k8s_objects import selector
from keelhaul.stack.render.monitoring import TIERS_FILE, monitoring_files
from keelhaul.stack.settings import StackSettings
from support.diagnose_synth import Synth, token_second

pytestmark = pytest.mark.unit

RECORDED = Path(__file__).parent / "data" / "prometheus-token-load.json"
SCHEMA = Path(__file__).parents[2] / "docs" / "diagnose-report.schema.json"


def recorded() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(RECORDED.read_text())
    return doc


def steps_of(rec: Mapping[str, Any]) -> list[float]:
    n = int((rec["end"] - rec["start"]) // rec["step"]) + 1
    return [round(rec["start"] + i * rec["step"], 3) for i in range(n)]


def collection_of(rec: Mapping[str, Any], drop: Sequence[str] = (), resolution: float = 1.0) -> Any:
    results = {}
    for q in queries(LOCAL):
        matrix = rec["results"][f"{q.kind}/{q.tier}"]
        results[q] = [] if q.tier in drop else matrix
    collection, unseen = build_collection(
        results, steps_of(rec), cpu_source="process-exporter", meta={}
    )
    meta = {
        "cores": 2,
        "source": SourceInfo(
            kind="prometheus", resolution_s=resolution, url=rec["url"], unseen=unseen
        ).as_dict(),
    }
    return type(collection)(collection.ticks, meta), unseen


# --- the mapping file ----------------------------------------------------------------------


def test_default_mapping_names_the_monitoring_jobs_and_process_groups() -> None:
    assert set(LOCAL.tiers) == {"nginx", "auth", "registry", "redis"}
    assert LOCAL.tiers["auth"].cpu == 'groupname="auth"'
    assert LOCAL.tiers["redis"].metrics == 'job="redis"'
    assert LOCAL.cpu_source == "process-exporter"


def rendered_k8s_mapping(directory: Path) -> TierMap:
    """The ``tiers.yaml`` that ``stack render --target k8s --monitoring --namespace
    keelhaul`` writes, read by the same loader as any mapping file."""
    deploy = DeploySettings.model_validate({"target": "k8s", "namespace": "keelhaul"})
    plan = plan_for(StackSettings.model_validate({"monitoring": True}), deploy)
    path = directory / TIERS_FILE
    path.write_text(monitoring_files(plan, deploy)[TIERS_FILE])
    return load_tier_map(path)


def test_the_rendered_kubernetes_mapping_selects_the_rendered_names(tmp_path: Path) -> None:
    k8s = rendered_k8s_mapping(tmp_path)
    assert k8s.cpu_source == "cadvisor"
    for tier in ("nginx", "auth", "registry", "redis"):
        assert f'container="{tier}"' in k8s.tiers[tier].cpu
        assert 'namespace="keelhaul"' in k8s.tiers[tier].cpu
        # the rendered pods carry app.kubernetes.io/name=<tier>
        assert selector(tier)["app.kubernetes.io/name"] == tier
        assert f'app_kubernetes_io_name="{tier}"' in k8s.tiers[tier].metrics


def test_a_mapping_file_is_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(
        "version: 1\ncpu_source: cadvisor\nhost: 'job=\"node\"'\ntiers:\n"
        '  registry: {cpu: \'namespace="reg",container="registry"\', metrics: \'job=~"reg.*"\'}\n'
    )
    tiers = load_tier_map(path)
    assert tiers.cpu_source == "cadvisor"
    assert tiers.tiers["registry"].metrics == 'job=~"reg.*"'
    promql = {q.kind: q.promql for q in queries(tiers)}
    assert 'container="registry"' in promql["cpu"] and "container_cpu_usage" in promql["cpu"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("version: 1\ntiers: {proxy: {cpu: 'a=\"b\"'}}\n", "unknown tier(s) proxy"),
        ("version: 1\ntiers: {nginx: {cpu: 'groupname=nginx'}}\n", "tiers.nginx.cpu"),
        ("version: 2\ntiers: {nginx: {cpu: 'a=\"b\"'}}\n", "version"),
        ("version: 1\ncpu_source: top\ntiers: {nginx: {}}\n", "cpu_source"),
        ("version: 1\ntiers: {nginx: {cpus: 'a=\"b\"'}}\n", "unknown key"),
        ("version: 1\n", "tiers: is required"),
        ("tiers: [\n", "not valid YAML"),
    ],
)
def test_a_wrong_mapping_is_one_line_naming_the_key(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(text)
    with pytest.raises(DiagnoseError) as caught:
        load_tier_map(path)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_mapping_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DiagnoseError, match="does not exist"):
        load_tier_map(tmp_path / "none.yaml")


# --- the recorded run ----------------------------------------------------------------------


def test_recorded_run_gives_every_tier_and_the_token_traffic() -> None:
    rec = recorded()
    collection, unseen = collection_of(rec)
    assert unseen == ()
    s = derive(collection)
    assert s.source.kind == "prometheus" and s.source.resolution_s == 1.0
    auth = s.auth
    assert auth is not None
    assert 150 <= auth.rps <= 260  # hey measured ~200/s; the window is its last 9 s
    assert auth.workers is not None and auth.workers >= 1
    assert auth.capacity is not None and auth.capacity >= auth.workers
    assert auth.app_mean is not None and auth.app_mean < 0.05
    assert {"parse", "authn", "authz", "sign"} <= set(auth.stages)
    cpu = s.tiers["auth"]
    assert cpu.cpu > 0.05 and not cpu.runq_seen and cpu.procs >= 2  # master + workers
    assert s.tiers["nginx"].procs >= 2 and s.tiers["redis"].cpu >= 0.0
    assert s.proxy is not None and s.proxy.active_mean is not None and s.proxy.active_mean >= 1
    assert not s.proxy.stages  # no per-request upstream times through the exporter
    assert s.redis is not None and s.redis.busy_share is not None and s.redis.clients
    assert s.redis.ping_p50_ms is None  # not visible through Prometheus
    assert s.registry is not None and s.registry.scrape_error_share == 0.0
    assert s.host_busy is not None and 0 < s.host_busy <= 1


def test_recorded_run_through_the_whole_engine_and_reports() -> None:
    import jsonschema

    collection, _ = collection_of(recorded())
    report = analyse(collection)
    assert report.verdict.tier != "no_traffic"
    assert any("not visible through prometheus" in c for c in report.verdict.caveats)
    doc = json.loads(dumps(build_document(report)))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["source"]["kind"] == "prometheus"
    assert doc["source"]["resolution_s"] == 1.0
    assert any(b.startswith("run-queue wait (estimated") for b in doc["source"]["blind"])
    page = render_html(doc)
    assert "source: Prometheus (query_range over the run&#x27;s window)" in page
    assert "a sample every 1 s" in page


def test_the_resolution_is_the_samples_spacing() -> None:
    rec = recorded()
    assert spacing(rec["probe"]["result"]) == 1.0
    sparse = [{"metric": {}, "values": [[0, "1"], [15, "2"], [30, "3"], [46, "4"]]}]
    assert spacing(sparse) == 15.0
    assert spacing([{"metric": {}, "values": [[0, "1"]]}]) is None


def test_a_tier_without_series_is_unseen_not_idle() -> None:
    collection, unseen = collection_of(recorded(), drop=("registry",))
    assert unseen == ("registry",)
    s = derive(collection)
    assert "registry" not in s.tiers and s.registry is None
    verdict = decide(s)
    assert any("no data for registry from prometheus: unseen" in c for c in verdict.caveats)
    if verdict.tier in ("none", "load_generator"):
        assert verdict.confidence == "low"
        assert verdict.tier != "none" or "registry could not be seen" in verdict.title


def test_a_step_without_samples_is_unreadable_not_zero() -> None:
    rec = recorded()
    times = steps_of(rec)
    results: dict[Query, list[Any]] = {}
    for q in queries(LOCAL):
        matrix = rec["results"][f"{q.kind}/{q.tier}"]
        if q.tier == "auth" and q.kind == "metrics":  # the scrapes of 3 steps failed
            matrix = [
                {**series, "values": [v for v in series["values"] if v[0] not in times[3:6]]}
                for series in matrix
            ]
        results[q] = matrix
    collection, _ = build_collection(results, times, cpu_source="process-exporter", meta={})
    errors = [t.reading("auth").error for t in collection.ticks]  # type: ignore[union-attr]
    assert errors[3:6] == ["no auth samples at this step"] * 3
    assert all(e is None for e in errors[:3] + errors[6:])
    assert derive(collection).errors["auth"] == 3


def test_a_failed_scrape_is_unreadable_not_zero() -> None:
    """Prometheus keeps ``up`` and ``scrape_duration_seconds`` for a scrape that timed out;
    the registry's own series are stale at those steps: unreadable, never zero requests."""
    rec = recorded()
    times = steps_of(rec)
    failed = set(times[2:7])
    results: dict[Query, list[Any]] = {}
    for q in queries(LOCAL):
        matrix = rec["results"][f"{q.kind}/{q.tier}"]
        if q.tier == "registry" and q.kind == "metrics":
            matrix = [
                {**series, "values": [v for v in series["values"] if v[0] not in failed]}
                for series in matrix
            ]
            job = {"job": "registry", "instance": "127.0.0.1:5001"}
            matrix += [
                {"metric": {"__name__": "up", **job},
                 "values": [[t, "0" if t in failed else "1"] for t in times]},
                {"metric": {"__name__": SCRAPE, **job},
                 "values": [[t, "1.0" if t in failed else "0.004"] for t in times]},
            ]  # fmt: skip
        results[q] = matrix
    collection, _ = build_collection(results, times, cpu_source="process-exporter", meta={})
    errors = [t.reading("registry").error for t in collection.ticks]  # type: ignore[union-attr]
    failure = "Prometheus' scrape of the registry metrics failed after 1.00 s (up=0)"
    assert errors[2:7] == [failure] * 5
    assert all(e is None for e in errors[:2] + errors[7:])
    s = derive(collection)
    assert s.errors["registry"] == 5
    assert s.registry is not None and s.registry.scrape_error_share == pytest.approx(5 / s.steps)


# --- cAdvisor: a tier under a CPU quota seen through throttling counters -------------------


def _series(name: str, labels: Mapping[str, str], values: Sequence[float]) -> dict[str, Any]:
    return {
        "metric": {"__name__": name, **labels},
        "values": [[float(i * 15), str(v)] for i, v in enumerate(values)],
    }


def cadvisor_quota_run(
    throttled_per_step: float, directory: Path, tier: str = "registry"
) -> tuple[dict[Query, list[Any]], list[float]]:
    """Eight 15 s steps of registry traffic, ``tier``'s pod limited to 0.5 CPU, in
    cAdvisor's series shape."""
    k8s = rendered_k8s_mapping(directory)
    n = 8
    pod = {"namespace": "keelhaul", "pod": f"{tier}-7d9f-x2", "container": tier}

    def rising(per_step: float) -> list[float]:
        return [i * per_step for i in range(n)]

    cpu = [
        _series("container_cpu_usage_seconds_total", pod, rising(7.4)),
        _series("container_cpu_cfs_periods_total", pod, rising(150)),
        _series("container_cpu_cfs_throttled_periods_total", pod, rising(throttled_per_step)),
        _series("container_spec_cpu_quota", pod, [50000] * n),
        _series("container_spec_cpu_period", pod, [100000] * n),
    ]
    app = {"namespace": "keelhaul", "app_kubernetes_io_name": "registry", "pod": "registry-1"}
    handler = {**app, "handler": "manifest", "method": "GET"}
    metrics = [
        _series("registry_http_requests_total", {**app, "code": "200"}, rising(600)),
        _series("registry_http_in_flight_requests", {**app, "handler": "manifest"}, [12] * n),
        _series("registry_http_request_duration_seconds_sum", handler, rising(90.0)),
    ]
    for le, per_step in (("0.05", 100), ("0.25", 550), ("+Inf", 600)):
        metrics.append(
            _series(
                "registry_http_request_duration_seconds_bucket",
                {**handler, "le": le},
                rising(per_step),
            )
        )
    results: dict[Query, list[Any]] = {}
    for q in queries(k8s):
        results[q] = cpu if (q.tier, q.kind) == (tier, "cpu") else []
        if (q.tier, q.kind) == ("registry", "metrics"):
            results[q] = metrics
    return results, [float(i * 15) for i in range(n)]


def test_a_registry_throttled_by_its_cpu_quota_is_named_through_cadvisor(tmp_path: Path) -> None:
    results, times = cadvisor_quota_run(throttled_per_step=120, directory=tmp_path)
    collection, unseen = build_collection(results, times, cpu_source="cadvisor", meta={})
    assert unseen == ("auth", "nginx", "redis")
    meta = {
        "cores": 8,
        "source": SourceInfo(kind="prometheus", resolution_s=15.0, unseen=unseen).as_dict(),
    }
    s = derive(type(collection)(collection.ticks, meta))
    registry = s.tiers["registry"]
    assert registry.throttled_share == pytest.approx(0.8)
    assert registry.cpu_limit == pytest.approx(0.5)
    assert registry.replicas == 1.0
    assert registry.cpu == pytest.approx(7.4 / 15)
    verdict = decide(s)
    assert verdict.tier == "registry"
    assert verdict.title == "the registry is starved of CPU by its cgroup quota"
    assert "throttled in 80% of CPU periods (limit 0.50 CPUs)" in verdict.evidence[0]
    assert verdict.confidence == "medium"  # 15 s data: never high
    assert any("data every 15 s" in c for c in verdict.caveats)


@pytest.mark.parametrize(
    ("tier", "verdict_tier", "name"),
    [("nginx", "proxy", "nginx"), ("auth", "token_cpu", "the token service"),
     ("redis", "redis", "Redis")],
)  # fmt: skip
def test_any_tier_throttled_by_its_cpu_quota_is_named_through_cadvisor(
    tmp_path: Path, tier: str, verdict_tier: str, name: str
) -> None:
    results, times = cadvisor_quota_run(throttled_per_step=120, directory=tmp_path, tier=tier)
    collection, _ = build_collection(results, times, cpu_source="cadvisor", meta={})
    meta = {"cores": 8, "source": SourceInfo(kind="prometheus", resolution_s=15.0).as_dict()}
    s = derive(type(collection)(collection.ticks, meta))
    assert s.tiers[tier].throttled_share == pytest.approx(0.8)
    assert s.tiers[tier].cpu_limit == pytest.approx(0.5)
    verdict = decide(s)
    assert verdict.tier == verdict_tier, verdict.text()
    assert verdict.title == f"{name} is starved of CPU by its cgroup quota"
    assert "throttled in 80% of CPU periods (limit 0.50 CPUs)" in verdict.evidence[0]
    unthrottled, _ = cadvisor_quota_run(throttled_per_step=0, directory=tmp_path, tier=tier)
    plain, _ = build_collection(unthrottled, times, cpu_source="cadvisor", meta={})
    assert decide(derive(type(plain)(plain.ticks, meta))).tier != verdict_tier


def test_without_throttling_the_same_registry_is_not_called_starved(tmp_path: Path) -> None:
    results, times = cadvisor_quota_run(throttled_per_step=0, directory=tmp_path)
    collection, _ = build_collection(results, times, cpu_source="cadvisor", meta={})
    meta = {"cores": 8, "source": SourceInfo(kind="prometheus", resolution_s=15.0).as_dict()}
    verdict = decide(derive(type(collection)(collection.ticks, meta)))
    assert "cgroup quota" not in verdict.title


# --- coarse data, worker wait, input parsing ------------------------------------------------


def test_coarse_data_caps_the_confidence() -> None:
    assert resolution_cap(1.0, 20) == "high"
    assert resolution_cap(15.0, 20) == "medium"
    assert resolution_cap(60.0, 20) == "low"
    assert resolution_cap(1.0, 3) == "medium"
    assert resolution_cap(30.0, 3) == "low"
    assert cap_confidence("high", "medium") == "medium"
    assert cap_confidence("medium", "high") == "medium"


def _no_queue_token_run(upstream: float) -> Synth:
    """A token service whose requests wait (upstream) while every gauge looks calm."""
    s = Synth()
    for _ in range(10):
        token_second(
            s, rps=300, app=0.001, upstream=upstream, authn=0.0001, cache="local",
            inflight=0.0, capacity=8.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.5, 0.1), "nginx": (0.05, 0.0), "generator": (0.2, 0.0)},
            host=2.0,
        )  # fmt: skip
    return s


def test_requests_waiting_for_a_worker_are_seen_without_any_queue_gauge() -> None:
    waited = decide(derive(_no_queue_token_run(upstream=0.030).collection()))
    assert waited.tier == "token_workers", waited.text()
    assert any("waited 29.0 ms for a worker" in e for e in waited.evidence)
    calm = decide(derive(_no_queue_token_run(upstream=0.0012).collection()))
    assert calm.tier != "token_workers"


def test_the_load_generators_token_time_stands_in_for_the_proxy() -> None:
    rec = recorded()
    collection, _ = collection_of(rec)
    app = derive(collection).auth
    assert app is not None and app.app_mean is not None
    slow = ClientStage("token", 2000, 0, 200.0, 1000 * app.app_mean + 40.0, None, None)
    s = derive(collection, (slow,))
    assert s.auth is not None and s.auth.wait_mean == pytest.approx(0.040, abs=1e-6)
    assert "upper bound" in (s.auth.wait_basis or "")
    fast = ClientStage("token", 2000, 0, 200.0, 1000 * app.app_mean + 0.5, None, None)
    assert (derive(collection, (fast,)).auth or app).wait_mean == pytest.approx(0.0005, abs=1e-6)
    report = analyse(collection, client=ClientRun((slow,), None, None))
    assert report.verdict.tier == "token_workers", report.verdict.text()
    token = next(w for w in report.waterfalls if w.stage == "token")
    assert token.observer == "client" and token.total == pytest.approx(slow.mean_ms / 1000)
    assert token.segments[0].name == "client: network, proxy, waiting for a worker"
    assert token.segments[0].seconds == pytest.approx(0.040)


def _with_generator_throttled(collection: Any, throttled: float) -> Any:
    """The load generator sampled locally beside the Prometheus window (as ``load
    --diagnose --prometheus`` does), its cgroup throttled in ``throttled`` of periods."""
    local = [
        Tick(
            tick.t,
            {
                "procs": Reading(
                    gauges={"procs.generator": 1.0, "cpu_limit.generator": 0.2},
                    counters={
                        "cpu.generator": 0.2 * i,
                        "periods.generator": 10.0 * i,
                        "throttled_periods.generator": 10.0 * throttled * i,
                    },
                )
            },
        )
        for i, tick in enumerate(collection.ticks)
    ]
    return merge_local(collection, local, ("generator",))


def test_a_saturated_generators_own_delays_are_not_a_worker_queue() -> None:
    """The generator's token time stands in for the proxy's only while the generator keeps
    up: throttled by its quota, its own stalls are in that time."""
    collection, _ = collection_of(recorded())
    app = derive(collection).auth
    assert app is not None and app.app_mean is not None
    slow = ClientStage("token", 2000, 0, 200.0, 1000 * app.app_mean + 40.0, None, None)
    free = decide(derive(_with_generator_throttled(collection, 0.0), (slow,)))
    assert free.tier == "token_workers", free.text()
    starved = decide(derive(_with_generator_throttled(collection, 0.9), (slow,)))
    assert starved.tier == "load_generator", starved.text()
    assert "throttled in 90% of CPU periods (limit 0.20 CPUs)" in starved.evidence[0]


def test_window_and_url_parsing() -> None:
    assert parse_window("100..160") == (100.0, 160.0)
    a, b = parse_window("2026-05-01T10:00:00Z..2026-05-01T10:05:00Z")
    assert b - a == 300
    for bad in ("100", "160..100", "x..y", "..5"):
        with pytest.raises(DiagnoseError):
            parse_window(bad)
    assert check_url("http://127.0.0.1:9090/") == "http://127.0.0.1:9090"
    assert check_url("https://prom.example/prefix/") == "https://prom.example/prefix"
    for bad in ("127.0.0.1:9090", "ftp://x", "http://user:pw@host:1"):
        with pytest.raises(DiagnoseError) as caught:
            check_url(bad)
        assert "pw" not in str(caught.value)


def test_a_collection_from_before_sources_is_local() -> None:
    assert SourceInfo.from_meta({}) == SourceInfo(kind="local", resolution_s=1.0)


def _with_auth_scrapes(seconds: float, floor: float) -> Any:
    rec = recorded()
    times = steps_of(rec)
    results: dict[Query, list[Any]] = {}
    for q in queries(LOCAL):
        results[q] = list(rec["results"][f"{q.kind}/{q.tier}"])
        if (q.tier, q.kind) == ("auth", "metrics"):
            scrape = {
                "metric": {"__name__": "scrape_duration_seconds", "job": "auth"},
                "values": [[t, str(seconds)] for t in times],
            }
            results[q].append(scrape)
    collection, _ = build_collection(
        results, times, cpu_source="process-exporter", meta={}, scrape_floors={"auth": floor}
    )
    meta = {"cores": 2, "source": SourceInfo(kind="prometheus", resolution_s=1.0).as_dict()}
    return type(collection)(collection.ticks, meta)


def test_scrapes_that_queue_for_a_worker_show_the_wait() -> None:
    """A sync worker answers Prometheus only after the requests queued before the scrape."""
    s = derive(_with_auth_scrapes(0.090, floor=0.003))
    assert s.auth is not None and s.auth.wait_mean == pytest.approx(0.087)
    assert "scrapes of its /metrics took 90 ms (median) against 3 ms" in (s.auth.wait_basis or "")
    verdict = decide(s)
    assert verdict.tier == "token_workers", verdict.text()
    assert any("waited 87.0 ms for a worker" in e for e in verdict.evidence)


def test_scrape_jitter_on_a_busy_host_is_not_a_queue() -> None:
    s = derive(_with_auth_scrapes(0.008, floor=0.003))  # under SCRAPE_RATIO x the floor
    assert s.auth is not None and s.auth.wait_mean == 0.0
    assert decide(s).tier != "token_workers"


def _with_states(running: float, threads_per_proc: float, doubled: float = 0.0) -> Any:
    """The recorded run, with process-exporter's ``states`` and ``num_threads`` added to the
    token service's CPU series: ``running`` threads Running, the rest Sleeping, the states
    adding up to the threads plus ``doubled`` (its multi-threaded processes, whose main
    thread process-exporter counts twice)."""
    rec = recorded()
    times = steps_of(rec)
    procs = next(
        m for m in rec["results"]["cpu/auth"]
        if m["metric"]["__name__"] == "namedprocess_namegroup_num_procs"
    )  # fmt: skip
    threads = [(t, float(v) * threads_per_proc) for t, v in procs["values"]]
    results: dict[Query, list[Any]] = {}
    for q in queries(LOCAL):
        results[q] = list(rec["results"][f"{q.kind}/{q.tier}"])
        if (q.tier, q.kind) == ("auth", "cpu"):
            group = {"groupname": "auth"}
            state = "namedprocess_namegroup_states"
            results[q] += [
                {
                    "metric": {"__name__": state, **group, "state": "Running"},
                    "values": [[t, str(running)] for t, _ in threads],
                },
                {
                    "metric": {"__name__": state, **group, "state": "Sleeping"},
                    "values": [[t, str(n + doubled - running)] for t, n in threads],
                },
                {
                    "metric": {"__name__": "namedprocess_namegroup_num_threads", **group},
                    "values": [[t, str(n)] for t, n in threads],
                },
            ]
    collection, _ = build_collection(results, times, cpu_source="process-exporter", meta={})
    return collection


def test_single_threaded_processes_found_runnable_estimate_the_run_queue_wait() -> None:
    """Four single-threaded workers always runnable on a host where they got 0.3 CPU:
    they wanted four CPUs (the local source's schedstat view)."""
    auth = derive(_with_states(4, threads_per_proc=1)).tiers["auth"]
    assert auth.runq_seen and not auth.runq_floor
    assert auth.demand == pytest.approx(4.0)
    assert auth.runq == pytest.approx(4.0 - auth.cpu)


@pytest.mark.parametrize(("running", "doubled", "floor"), [(5, 1, 4), (4, 5, 2), (1, 1, 0.5)])
def test_multi_threaded_processes_found_runnable_give_a_lower_bound(
    running: float, doubled: float, floor: float
) -> None:
    """``doubled`` processes have a second thread: at most that many main threads are
    counted twice, and each only if it ran, so at least ``running - doubled`` threads and
    at least half of ``running`` were runnable."""
    s = derive(_with_states(running, threads_per_proc=2, doubled=doubled))
    auth = s.tiers["auth"]
    assert auth.runq_seen and auth.runq_floor
    assert auth.demand == pytest.approx(max(floor, auth.cpu))
    if floor >= 2:  # more than the host's CPUs: the evidence says how it was estimated
        assert f"4 worker(s) wanted ~{auth.demand:.2f} CPUs" in decide(s).text()
        assert "from the threads found runnable at each scrape" in decide(s).text()
        # over the threshold only through the sampled floor: weaker than a measured finding
        token_cpu = [f for f in decide(s).findings if f.tier == "token_cpu"]
        assert [f.score for f in token_cpu] == [SAMPLED]


def test_states_that_do_not_add_up_estimate_nothing() -> None:
    """Fewer states than threads (an exporter that counts differently): no estimate."""
    auth = derive(_with_states(4, threads_per_proc=2, doubled=-20)).tiers["auth"]
    assert not auth.runq_seen
    assert auth.demand == auth.cpu


THREADS = Path(__file__).parent / "data" / "process-exporter-threads.json"


def test_process_exporters_states_count_a_threaded_process_main_thread_twice() -> None:
    """Recorded from Debian's prometheus-process-exporter 0.7.10 (``-threads`` on, its
    default) scraped once a second: two Python processes of two threads each, one thread
    of each spinning on a CPU, the other asleep. ``main-busy`` spins in its main thread,
    ``worker-busy`` in its second thread. Both wanted one CPU; the states say two
    Running for the first (its main thread counted as the process and as a thread) and
    three states for two threads in each: the count cannot say exactly what either wanted,
    only at least half a CPU; the estimate is that floor, never above the CPU it did want."""
    rec = json.loads(THREADS.read_text())
    values = {
        (m["metric"]["groupname"], m["metric"]["__name__"], m["metric"].get("state")): [
            float(v) for _, v in m["values"]
        ]
        for m in rec["results"]
    }
    states = "namedprocess_namegroup_states"
    assert set(values["main-busy", states, "Running"]) == {2.0}
    assert set(values["worker-busy", states, "Running"]) == {1.0}
    for group in ("main-busy", "worker-busy"):
        threads = values[group, "namedprocess_namegroup_num_threads", None]
        total = [r + z for r, z in zip(values[group, states, "Running"],
                                       values[group, states, "Sleeping"], strict=True)]  # fmt: skip
        assert all(t == n + 1 for t, n in zip(total, threads, strict=True))

    tiers = {"main-busy": "auth", "worker-busy": "registry"}
    times = [float(rec["start"] + i * rec["step"]) for i in range(len(rec["results"][0]["values"]))]
    results: dict[Query, list[Any]] = {q: [] for q in queries(LOCAL)}
    for q, matrix in results.items():
        if q.kind != "cpu":
            continue
        for m in rec["results"]:
            if tiers[m["metric"]["groupname"]] == q.tier:
                matrix.append({**m, "metric": {**m["metric"], "groupname": q.tier}})
    collection, _ = build_collection(results, times, cpu_source="process-exporter", meta={})
    derived = derive(type(collection)(collection.ticks, {"cores": 2}))
    for tier in tiers.values():
        assert collection.ticks[-1].gauge("procs", f"procs.{tier}") == 1.0
        cpu = derived.tiers[tier]
        assert cpu.runq_seen and cpu.runq_floor, tier
        assert 0 < cpu.demand <= 1.05  # each wanted one CPU: a floor, never more


def test_a_wait_for_a_cpu_taken_by_others_is_not_a_worker_shortage() -> None:
    """The token service got 0.04 CPU and waited 0.25 for one (neighbours took the host):
    its requests wait, but more workers would not help."""
    s = Synth()
    for _ in range(10):
        token_second(
            s, rps=15, app=0.0017, upstream=0.030, authn=0.0001, cache="local",
            inflight=0.0, capacity=4000.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.04, 0.25), "nginx": (0.01, 0.0), "generator": (0.05, 0.0)},
            host=2.0,
        )  # fmt: skip
    verdict = decide(derive(s.collection()))
    assert verdict.tier != "token_workers", verdict.text()


def test_a_pinned_load_generator_sampled_here_is_the_limit_of_a_healthy_stack() -> None:
    """The stack through Prometheus (the recorded healthy run), the load generator sampled
    on this machine (its own process: one thread at 0.95 of a CPU) and merged into each
    step: the verdict names the generator, not a tier."""
    from keelhaul.diagnose.model import Reading, Tick
    from keelhaul.diagnose.promseries import merge_local

    collection, _ = collection_of(recorded())
    first = collection.ticks[0].t
    local = [
        Tick(
            t=first - 1 + i,
            readings={
                "procs": Reading(
                    gauges={"procs.generator": 1.0, "busiest.generator": 0.95},
                    counters={"cpu.generator": 0.95 * i, "runq.generator": 0.02 * i,
                              "cpu.redis": 99.0},
                )
            },
        )
        for i in range(len(collection.ticks) + 2)
    ]  # fmt: skip
    merged = merge_local(collection, local, ("generator", "diagnosis"))
    assert merged.ticks[-1].counter("procs", "cpu.redis") != 99.0  # only the generator's keys
    s = derive(merged)
    assert s.tiers["generator"].cpu == pytest.approx(0.95)
    verdict = decide(s)
    assert verdict.tier == "load_generator", verdict.text()
    assert "pinned" in verdict.evidence[0]

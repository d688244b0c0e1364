"""The verdict rules on synthetic runs shaped like the real bottlenecks (see diagnose_synth)."""

from __future__ import annotations

import pytest

from keelhaul.diagnose.analysis import analyse
from keelhaul.diagnose.signals import derive
from keelhaul.diagnose.verdict import HotSpot, decide
from support.diagnose_synth import Synth, registry_second, token_second

pytestmark = pytest.mark.unit

SECONDS = 10


def one_sync_worker() -> Synth:
    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=470, app=0.0003, upstream=0.031, authn=0.00003, cache="local",
            inflight=1.0, capacity=1.0, workers=1.0, queue=14.0,
            tiers={"auth": (0.39, 0.40), "nginx": (0.09, 0.2), "generator": (0.1, 0.17)},
            host=2.0,
        )  # fmt: skip
    return s


def bcrypt_no_cache() -> Synth:
    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=3, app=2.48, upstream=3.1, authn=2.47, cache="off",
            inflight=6.0, capacity=4000.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.51, 2.46), "nginx": (0.01, 0.0), "generator": (0.0, 0.0)},
            host=2.0,
        )  # fmt: skip
    return s


def proxy_starved() -> Synth:
    s = Synth()
    for i in range(SECONDS):
        token_second(
            s, rps=150, app=0.001, upstream=0.013, authn=0.0001, cache="local",
            inflight=0.0, capacity=4000.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.23, 0.76), "nginx": (0.11, 0.32)},
            host=2.0, stub={"dropped": 300.0}, listen_nginx=58.0 if i % 2 else 0.0,
            log_counts={"nginx.conn_exhausted": 300.0},
            notes={"logs": ["nginx: [alert] 16 worker_connections are not enough"]},
        )  # fmt: skip
    return s


def healthy_light() -> Synth:
    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=20, app=0.0008, upstream=0.002, authn=0.00003, cache="local",
            inflight=0.0, capacity=4000.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.08, 0.02), "nginx": (0.01, 0.0), "generator": (0.01, 0.0)},
            host=1.7,
        )  # fmt: skip
    return s


def redis_slow() -> Synth:
    s = Synth()
    for _ in range(SECONDS):
        registry_second(
            s, rps=230, upstream=0.06, handler=0.051, storage=0.0001, inflight=16.0,
            tiers={"registry": (0.43, 0.66), "redis": (0.42, 0.53), "nginx": (0.02, 0.2)},
            host=2.0, redis_busy_usec=840_000.0, redis_ping_ms=28.8,
            top_command=("eval", 41_000.0),
        )  # fmt: skip
    return s


def registry_throttled() -> Synth:
    s = Synth()
    for _ in range(SECONDS):
        registry_second(
            s, rps=25, upstream=0.59, handler=0.38, storage=0.0026, inflight=6.0,
            tiers={"registry": (0.04, 2.96)}, host=2.0, throttle=(10.0, 9.6), cpu_limit=0.05,
        )  # fmt: skip
    return s


@pytest.mark.parametrize(
    ("scenario", "tier"),
    [
        (one_sync_worker, "token_workers"),
        (bcrypt_no_cache, "token_cpu"),
        (proxy_starved, "proxy"),
        (healthy_light, "none"),
        (redis_slow, "redis"),
        (registry_throttled, "registry"),
    ],
)
def test_each_bottleneck_gets_its_verdict(scenario, tier: str) -> None:  # type: ignore[no-untyped-def]
    verdict = decide(derive(scenario().collection()))
    assert verdict.tier == tier, verdict.text()
    assert 1 <= len(verdict.evidence) <= 3
    assert verdict.next_steps


def test_sync_worker_evidence_names_slots_and_queue() -> None:
    v = decide(derive(one_sync_worker().collection()))
    assert "every worker slot was taken in 100% of samples" in v.evidence[0]
    assert "accept queue" in v.evidence[1]
    assert v.confidence == "high"


def test_bcrypt_without_profile_names_the_stage_and_cache() -> None:
    v = decide(derive(bcrypt_no_cache().collection()))
    assert any("authn stage" in e and "credential cache: off" in e for e in v.evidence)
    assert any("credential cache on" in step for step in v.next_steps)


def test_bcrypt_with_profile_names_the_function() -> None:
    hot = HotSpot(
        "bcrypt.checkpw [native]",
        0.83,
        ("Authenticator.authenticate", "bcrypt.checkpw [native]"),
        4000,
    )
    v = decide(derive(bcrypt_no_cache().collection()), hot)
    assert v.tier == "token_cpu"
    assert "bcrypt.checkpw" in v.title
    assert any("83% of the workers' CPU samples in bcrypt.checkpw" in e for e in v.evidence)


def test_proxy_evidence_quotes_nginx() -> None:
    v = decide(derive(proxy_starved().collection()))
    assert "worker_connections are not enough" in v.evidence[0]
    assert "dropped" in v.evidence[1]


def test_redis_wins_over_the_registry_it_slows_down() -> None:
    v = decide(derive(redis_slow().collection()))
    assert v.tier == "redis"
    assert "EVAL took 41.0 ms per call" in v.evidence[0]
    assert {f.tier for f in v.also} == {"registry"}


def test_throttled_registry_names_its_quota() -> None:
    v = decide(derive(registry_throttled().collection()))
    assert "throttled in 96% of CPU periods (limit 0.05 CPUs)" in v.evidence[0]


def test_saturated_generator_is_never_mistaken_for_a_slow_server() -> None:
    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=300, app=0.0008, upstream=0.002, authn=0.00003, cache="local",
            inflight=0.0, capacity=4000.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.3, 0.05), "nginx": (0.05, 0.0), "generator": (1.0, 0.1)},
            host=1.6, busiest={"generator": 0.98},
        )  # fmt: skip
    v = decide(derive(s.collection()))
    assert v.tier == "load_generator"
    assert "0.98 of a CPU" in v.evidence[0]


def generator_in_a_pod(throttled: float, limit: float | None) -> Synth:
    """A load pod using 0.3 CPU while the stack idles along; its cgroup throttled in
    ``throttled`` of CFS periods (its thread never reaches a whole CPU: the quota stops it)."""
    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=120, app=0.0008, upstream=0.002, authn=0.00003, cache="local",
            inflight=0.0, capacity=4000.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.15, 0.0), "nginx": (0.02, 0.0), "generator": (0.3, 0.0)},
            host=0.6, busiest={"generator": 0.3}, throttle={"generator": (10.0, 10 * throttled)},
            cpu_limit={} if limit is None else {"generator": limit},
        )  # fmt: skip
    return s


def test_a_generator_throttled_by_its_cpu_quota_is_the_limit() -> None:
    v = decide(derive(generator_in_a_pod(0.8, 0.3).collection()))
    assert v.tier == "load_generator"
    assert "cgroup quota" in v.title
    assert "throttled in 80% of CPU periods (limit 0.30 CPUs)" in v.evidence[0]


def test_an_unthrottled_generator_at_the_same_cpu_is_not_the_limit() -> None:
    assert decide(derive(generator_in_a_pod(0.0, None).collection())).tier == "none"


def slow_handlers(generator: float) -> Synth:
    """Registry handlers at 70 ms with the registry far from busy (the shape a throttled
    generator gave through Prometheus: blobs stream unbuffered, a slow reader holds them)."""
    s = Synth()
    for _ in range(SECONDS):
        registry_second(
            s, rps=40, upstream=0.08, handler=0.07, storage=0.001, inflight=6.0,
            tiers={"registry": (0.3, 0.0), "nginx": (0.02, 0.0), "generator": (generator, 0.0)},
            host=1.3, busiest={"generator": generator},
        )  # fmt: skip
    return s


def test_slow_handlers_beside_a_saturated_generator_do_not_name_the_registry() -> None:
    alone = decide(derive(slow_handlers(generator=0.2).collection()))
    assert alone.tier == "registry", alone.text()
    assert "without being busy" in alone.title
    beside = decide(derive(slow_handlers(generator=0.97).collection()))
    assert beside.tier == "load_generator", beside.text()
    registry = next(f for f in beside.findings if f.tier == "registry")
    assert registry.score < 0.5 and "saturated" in registry.title


def test_server_bottleneck_wins_over_a_saturated_generator_with_a_caveat() -> None:
    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=470, app=0.0003, upstream=0.031, authn=0.00003, cache="local",
            inflight=1.0, capacity=1.0, workers=1.0, queue=14.0,
            tiers={"auth": (0.5, 0.4), "generator": (1.0, 0.0)}, host=2.0,
            busiest={"generator": 0.97},
        )  # fmt: skip
    v = decide(derive(s.collection()))
    assert v.tier == "token_workers"
    assert any("load generator was saturated too" in c for c in v.caveats)


def test_no_traffic() -> None:
    s = Synth()
    for _ in range(5):
        s.second(add={"procs": {"host.busy": 0.1, "host.total": 2.0}, "nginx_log": {}})
    v = decide(derive(s.collection()))
    assert v.tier == "no_traffic"


def test_window_skips_idle_seconds_and_the_ramp() -> None:
    s = Synth()
    for _ in range(5):
        s.second(
            add={"procs": {"host.busy": 0.1, "host.total": 2.0}, "nginx_log": {"n.token": 0.0}}
        )
    healthy = healthy_light()
    for tick in healthy.ticks[1:]:
        s.ticks.append(type(tick)(s.t, tick.readings))
        s.t += 1
    sig = derive(s.collection())
    assert sig.seconds == pytest.approx(SECONDS - 1)
    assert sig.proxy is not None and sig.proxy.rps == pytest.approx(20)


def test_other_processes_become_a_caveat_not_a_verdict() -> None:
    v = decide(derive(healthy_light().collection()))
    assert any("processes outside the stack used 1.60" in c for c in v.caveats)


def test_collector_errors_are_reported() -> None:
    s = healthy_light()
    s.second(errors={"registry": "GET /metrics: ReadTimeout"})
    token_second(
        s, rps=20, app=0.0008, upstream=0.002, authn=0.00003, cache="local", inflight=0.0,
        capacity=4000.0, workers=4.0, queue=0.0, tiers={"auth": (0.08, 0.02)}, host=0.2,
    )  # fmt: skip
    report = analyse(s.collection())
    assert report.signals.errors.get("registry") == 1


def test_proxy_errors_and_client_failures_are_caveats() -> None:
    from keelhaul.diagnose.signals import ClientStage

    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=20, app=0.0008, upstream=0.002, authn=0.00003, cache="local",
            inflight=0.0, capacity=4000.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.08, 0.02)}, host=0.3,
            nginx_extra={"s504.token": 3.0, "err.token": 3.0},
        )  # fmt: skip
    client = [ClientStage("token", 200, 7, 20.0, 2.0, 1.5, 9.0)]
    v = decide(derive(s.collection(), client))
    # the first busy second is a ramp and left out of the window: 8 seconds x 3
    assert "nginx answered 24 x 504 to token (the upstream timed out)" in v.caveats
    assert "the load generator counted failures: token 7" in v.caveats


def _registry_silent(
    throttle: tuple[float, float] | None, wait: float = 2.9, failed_every: int = 1
) -> Synth:
    """Manifest GETs reach the proxy; the registry's metrics endpoint never answers (or
    fails only every ``failed_every``-th second). ``wait``: its run-queue wait in CPUs (0: the
    source has no such signal, as with process-exporter and a multi-threaded registry)."""
    from support.diagnose_synth import STACK_PROCS, cpu, procs_gauges

    s = Synth()
    for i in range(SECONDS):
        procs = cpu({"registry": (0.05, wait)}, 2.0, s.cores)
        if throttle is not None:
            procs["periods.registry"], procs["throttled_periods.registry"] = throttle
        s.second(
            add={"procs": procs, "nginx_log": {"n.manifest GET": 25.0, "up.manifest GET": 25.0}},
            gauges={"procs": procs_gauges(STACK_PROCS)},
            errors={"registry": "timed out"} if i % failed_every == 0 else {},
        )
    return s


@pytest.mark.parametrize(
    ("throttle", "wait", "title"),
    [
        ((10.0, 9.6), 2.9, "the registry is starved of CPU by its cgroup quota"),
        (None, 2.9, "the registry is starved of CPU: too busy even to answer its metrics"),
        (
            None,
            0.0,
            "the registry stopped answering, even its metrics, without being busy: "
            "it is held back or paused",
        ),
    ],
)
def test_a_registry_too_starved_to_answer_its_metrics_is_still_named(
    throttle: tuple[float, float] | None, wait: float, title: str
) -> None:
    v = decide(derive(_registry_silent(throttle, wait).collection()))
    assert (v.tier, v.title) == ("registry", title), v.text()
    assert any("counted no request" in e for e in v.evidence)


def test_a_registry_whose_metrics_answer_mostly_is_not_named_silent() -> None:
    """The control: an endpoint that failed in a third of the samples is late, not stopped."""
    v = decide(derive(_registry_silent(None, 0.0, failed_every=3).collection()))
    assert "stopped answering" not in v.text(), v.text()


# --- a tier under a CPU quota: one rule, whichever tier and whichever source ----------------

QUOTA_VERDICTS = {"nginx": "proxy", "auth": "token_cpu", "registry": "registry", "redis": "redis"}


def quota_run(throttled: dict[str, float], *, slots_full: bool = False) -> Synth:
    """Token traffic at 150/s with every tier far from the host's two CPUs; each tier of
    ``throttled`` limited to 0.25 CPU, using it, throttled in that share of its CFS periods.
    ``slots_full``: every token-service slot taken and connections queued (what a throttled
    token service looks like from inside)."""
    tiers = {t: (0.25 if t in throttled else 0.1, 0.0) for t in QUOTA_VERDICTS}
    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=150, app=0.004, upstream=0.05 if slots_full else 0.005, authn=0.00003,
            cache="local",
            inflight=4.0 if slots_full else 0.0, capacity=4.0 if slots_full else 4000.0,
            workers=4.0, queue=9.0 if slots_full else 0.0,
            tiers={**tiers, "generator": (0.2, 0.0)}, host=1.0, busiest={"generator": 0.2},
            throttle={t: (10.0, 10 * throttled.get(t, 0.0)) for t in QUOTA_VERDICTS},
            cpu_limit={t: 0.25 for t in throttled},
        )  # fmt: skip
    return s


@pytest.mark.parametrize("tier", sorted(QUOTA_VERDICTS))
def test_any_tier_throttled_by_its_cpu_quota_is_named_with_its_quota(tier: str) -> None:
    v = decide(derive(quota_run({tier: 0.7}).collection()))
    assert v.tier == QUOTA_VERDICTS[tier], v.text()
    assert v.title.endswith("is starved of CPU by its cgroup quota"), v.text()
    assert "cgroup was throttled in 70% of CPU periods (limit 0.25 CPUs)" in v.evidence[0]
    assert "used 0.25 CPUs" in v.evidence[0]
    assert "limit" in v.next_steps[0]


@pytest.mark.parametrize("tier", sorted(QUOTA_VERDICTS))
def test_the_same_cpu_without_throttling_is_not_a_quota(tier: str) -> None:
    v = decide(derive(quota_run({tier: 0.0}).collection()))
    assert "cgroup quota" not in v.title, v.text()
    assert not any("throttled" in e for f in v.findings for e in f.evidence)


def test_a_throttled_token_service_with_full_slots_is_its_quota_not_its_workers() -> None:
    """Busy slots and a queue are what the quota does: more workers would not help."""
    v = decide(derive(quota_run({"auth": 0.7}, slots_full=True).collection()))
    assert v.tier == "token_cpu", v.text()
    assert "cgroup quota" in v.title
    assert "every worker slot was taken in 100% of samples" in v.evidence[1]
    assert v.confidence == "high"
    assert not any(f.tier == "token_workers" for f in v.findings)
    assert "more workers cannot help" in v.next_steps[0]


def test_two_throttled_tiers_follow_the_precedence() -> None:
    v = decide(derive(quota_run({"registry": 0.7, "redis": 0.9}).collection()))
    assert v.tier == "redis", v.text()  # Redis slows the registry down, not the other way
    assert {f.tier for f in v.also} == {"registry"}


def test_a_cpu_bound_registry_seen_only_through_the_sampled_floor_is_weaker_evidence() -> None:
    """process-exporter's runnable floor is a sample at the scrape's instant: a registry over
    the CPU threshold only through it scores below a measured finding (a token-worker queue
    at 0.6), but still names the registry when nothing else does."""
    from dataclasses import replace

    from keelhaul.diagnose.rules import SAMPLED, SATURATED, registry_rules

    s = Synth()
    for _ in range(SECONDS):
        registry_second(
            s, rps=200, upstream=0.01, handler=0.0075, storage=0.0001, inflight=5.0,
            tiers={"registry": (0.68, 0.98)}, host=2.0,
        )  # fmt: skip
    measured = derive(s.collection())
    sampled = replace(
        measured,
        tiers={**measured.tiers, "registry": replace(measured.tiers["registry"], runq_floor=True)},
    )
    (direct,) = registry_rules(measured)
    (floor,) = registry_rules(sampled)
    assert direct.title == floor.title == "the registry is CPU-bound"
    assert direct.score == 0.8
    assert SATURATED <= floor.score == SAMPLED < 0.6
    assert decide(sampled).tier == "registry"

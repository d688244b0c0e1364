"""keelhaul tune's pure parts: which move answers which verdict, noise, keep or revert."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from keelhaul.errors import StackError, TuneError
from keelhaul.stack.reconfigure import LIVE_KNOBS, components_for
from keelhaul.stack.settings import StackSettings
from keelhaul.tune.journey import Goal, Measurement, decide, gain, noise, parse_goal, threshold
from keelhaul.tune.moves import (
    FORBIDDEN,
    MOVES,
    NO_KNOB,
    STOP_TIERS,
    Context,
    recommend,
    untunable,
)
from keelhaul.tune.report import stack_flags, tuned_env

pytestmark = pytest.mark.unit

DEFAULTS = StackSettings().recorded()


def diagnosis(
    tier: str, *others: tuple[str, float], cache: dict[str, int] | None = None
) -> dict[str, Any]:
    findings = [{"tier": tier, "score": 0.9}, *({"tier": t, "score": s} for t, s in others)]
    token = {"authn_cache": {k: {"count": v, "mean": 0.2} for k, v in (cache or {}).items()}}
    return {
        "verdict": {"tier": tier, "findings": findings},
        "signals": {"host_busy": 0.5, "token_service": token},
    }


def ctx(tier: str, *others: tuple[str, float], **knobs: Any) -> Context:
    return Context(settings={**DEFAULTS, **knobs}, cores=2, diagnosis=diagnosis(tier, *others))


def m(flows: float, failed: float = 0.0, p95: float | None = 100.0, n: int = 1000) -> Measurement:
    return Measurement(
        flows_per_s=flows, rps=flows * 10, p50_ms=10.0, p95_ms=p95,
        flows=n, failed_flows=int(failed * n), goal=flows,
    )  # fmt: skip


def test_every_move_turns_only_live_knobs_and_never_a_security_one() -> None:
    knobs_set: set[str] = set()
    for move in MOVES:
        for tier in move.answers:
            worst = Context(
                settings={**DEFAULTS, "credential_cache": False, "auth_worker_class": "sync",
                          "auth_workers": 1, "proxy_workers": 1, "proxy_connections": 16,
                          "redis_url": "redis://127.0.0.1:6390/0"},
                cores=2, diagnosis=diagnosis(tier),
            )  # fmt: skip
            changes = move.propose(worst, tier)
            assert changes, (move.name, tier)
            knobs_set |= set(changes)
    assert knobs_set <= set(LIVE_KNOBS)
    assert not knobs_set & FORBIDDEN
    assert "bcrypt_cost" not in LIVE_KNOBS and "tls" not in LIVE_KNOBS


def test_a_slow_hash_is_answered_by_the_cache() -> None:
    p = recommend(ctx("token_cpu", credential_cache=False, bcrypt_cost=12))
    assert p is not None and p.changes == {"credential_cache": True}
    assert p.before == {"credential_cache": False}


def test_blocking_workers_get_gevent_then_more_workers() -> None:
    p = recommend(ctx("token_workers", auth_worker_class="sync", auth_workers=1))
    assert p is not None and p.changes == {"auth_worker_class": "gevent"}
    p2 = recommend(ctx("token_workers", auth_worker_class="sync", auth_workers=1), [p])
    assert p2 is not None and p2.changes == {"auth_workers": 4}


def test_full_workers_get_workers_before_the_cache_and_hashing_ones_the_cache_first() -> None:
    knobs = {"auth_worker_class": "sync", "auth_workers": 1, "credential_cache": False}
    p = recommend(ctx("token_workers", **knobs))
    assert p is not None and p.move.name == "gevent workers"
    p2 = recommend(ctx("token_workers", **knobs), [p])
    assert p2 is not None and p2.move.name == "more token-service workers"
    p3 = recommend(ctx("token_workers", **knobs), [p, p2])
    assert p3 is not None and p3.move.name == "credential cache on"
    first = recommend(ctx("token_cpu", **knobs))
    assert first is not None and first.move.name == "credential cache on"


def test_cpu_bound_workers_are_not_multiplied_past_the_cpus() -> None:
    assert recommend(ctx("token_cpu", auth_workers=2)) is None
    p = recommend(ctx("token_cpu", auth_workers=1))
    assert p is not None and p.changes == {"auth_workers": 2}


def test_the_proxy_gets_connections_then_workers() -> None:
    p = recommend(ctx("proxy", proxy_connections=64, proxy_workers=1))
    assert p is not None and p.changes == {"proxy_connections": 4096}
    p2 = recommend(ctx("proxy", proxy_connections=64, proxy_workers=1), [p])
    assert p2 is not None and p2.changes == {"proxy_workers": None}


def test_other_saturated_tiers_are_answered_when_the_verdict_has_no_move() -> None:
    p = recommend(ctx("registry", ("proxy", 0.7), ("redis", 0.3), proxy_connections=64))
    assert p is not None and p.tier == "proxy"
    assert recommend(ctx("registry", ("proxy", 0.3), proxy_connections=64)) is None


def test_a_tuned_stack_has_nothing_to_recommend() -> None:
    for tier in ("token_cpu", "token_workers", "proxy", "registry", "redis", "storage"):
        assert recommend(ctx(tier)) is None, tier
    assert set(STOP_TIERS) == {"none", "no_traffic", "load_generator"}


def test_goal_parsing() -> None:
    assert parse_goal("throughput") == Goal()
    assert parse_goal("image pull:p95") == Goal("image pull", "p95")
    with pytest.raises(TuneError, match="STAGE:METRIC"):
        parse_goal("image pull:p42")


def test_noise_and_the_bar_a_change_must_clear() -> None:
    assert noise(m(10), m(9)) == pytest.approx(0.1)
    assert threshold(0.01) == 0.05
    assert threshold(0.1) == pytest.approx(0.2)


def test_keep_only_beyond_the_noise() -> None:
    goal = Goal()
    assert decide(goal, m(10), m(13), 0.2)[0] is True
    keep, why = decide(goal, m(10), m(11), 0.2)
    assert keep is False and "not beyond the noise" in why
    keep, why = decide(goal, m(10), m(20, failed=0.3), 0.2)
    assert keep is False and "more flows failed" in why


def test_fewer_failures_is_kept_unless_throughput_collapses() -> None:
    goal = Goal()
    keep, why = decide(goal, m(1.0, failed=0.9), m(0.9, failed=0.0), 0.2)
    assert keep is True and "failed flows 90% -> 0%" in why
    assert decide(goal, m(1.0, failed=0.9), m(0.5, failed=0.0), 0.2)[0] is False


def test_latency_goals_improve_downwards() -> None:
    goal = Goal("image pull", "p95")
    before = dataclasses.replace(m(10), goal=200.0)
    after = dataclasses.replace(m(10), goal=100.0)
    assert gain(goal, before, after) == pytest.approx(0.5)
    assert decide(goal, before, after, 0.1)[0] is True


def test_tuned_settings_in_both_forms() -> None:
    settings = {**DEFAULTS, "auth_worker_class": "gevent", "credential_cache": False}
    flags = stack_flags(settings)
    assert flags[:2] == ["--auth-worker-class", "gevent"]
    assert "--no-credential-cache" in flags and "--proxy-workers" not in flags
    env = tuned_env(settings)
    assert "KEELHAUL_STACK_AUTH_WORKER_CLASS=gevent\n" in env
    assert "KEELHAUL_STACK_CREDENTIAL_CACHE=false\n" in env
    # what stack up / stack render read back
    from keelhaul.stack.settings import load_stack_settings

    environ = dict(line.split("=", 1) for line in env.splitlines() if not line.startswith("#"))
    loaded = load_stack_settings(environ=environ)
    assert loaded.auth_worker_class == "gevent" and loaded.credential_cache is False


def test_only_live_knobs_change_on_a_running_stack() -> None:
    assert components_for({"credential_cache": True, "proxy_connections": 8192}) == [
        "auth",
        "nginx",
    ]
    with pytest.raises(StackError, match="bcrypt_cost"):
        components_for({"bcrypt_cost": 4})


EXTERNAL = "redis://:s3cret@127.0.0.1:6390/2"


def test_a_busy_shared_redis_is_answered_by_the_stacks_own() -> None:
    p = recommend(ctx("redis", redis_url=EXTERNAL))
    assert p is not None and p.move.name == "own Redis" and p.changes == {"redis_url": None}
    assert p.before == {"redis_url": EXTERNAL}
    # the journey's text shows where Redis went, never the password
    assert "s3cret" not in p.text and "own Redis" in p.diff and "127.0.0.1:6390" in p.diff
    assert untunable(ctx("redis", redis_url=EXTERNAL)) is None
    # tried (and reverted): nothing left, and no claim that the Redis is the stack's own
    assert recommend(ctx("redis", redis_url=EXTERNAL), [p]) is None
    assert untunable(ctx("redis", redis_url=EXTERNAL)) is None


def test_a_busy_own_redis_has_no_knob_and_tune_says_so() -> None:
    assert recommend(ctx("redis")) is None
    said = untunable(ctx("redis"))
    assert said is not None and "no knob" in said and "already the stack's own" in said
    assert untunable(ctx("registry")) == NO_KNOB["registry"]
    assert untunable(ctx("proxy", proxy_connections=64)) is None
    # Redis on or off stays a shape, not a move: no move turns it, whatever the verdict
    for move in MOVES:
        changes = move.propose(ctx("redis", redis_url=EXTERNAL, redis=True), "redis") or {}
        assert "redis" not in changes


def test_the_placement_knob_restarts_redis_and_its_two_clients() -> None:
    assert components_for({"redis_url": None}) == ["redis", "auth", "registry"]
    assert "redis_url" in LIVE_KNOBS and "redis" in FORBIDDEN and "redis_url" not in FORBIDDEN


def test_tuned_settings_carry_the_external_redis_or_its_removal() -> None:
    kept_external = {**DEFAULTS, "redis_url": EXTERNAL}
    env = tuned_env(kept_external, kept_external)
    assert "KEELHAUL_STACK_REDIS_URL=redis://127.0.0.1:6390/2\n" in env
    assert "s3cret" not in env and "password is left out" in env
    flags = stack_flags(kept_external)
    assert flags[flags.index("--redis-url") + 1] == "redis://127.0.0.1:6390/2"
    # the own Redis kept: the URL is gone, and written empty so that a stale
    # KEELHAUL_STACK_REDIS_URL cannot bring the shared instance back
    env = tuned_env(DEFAULTS, kept_external)
    assert "KEELHAUL_STACK_REDIS_URL=\n" in env and "redis://" not in env
    assert "--redis-url" not in stack_flags(DEFAULTS)
    from keelhaul.stack.settings import load_stack_settings

    environ = dict(line.split("=", 1) for line in env.splitlines() if not line.startswith("#"))
    stale = {"KEELHAUL_STACK_REDIS_URL": EXTERNAL}
    loaded = load_stack_settings(environ={**stale, **environ})
    assert loaded.redis_url is None and loaded.own_redis
    # a stack that never had one is not told about it
    assert "REDIS_URL" not in tuned_env(DEFAULTS, DEFAULTS)

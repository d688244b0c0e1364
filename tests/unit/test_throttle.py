"""Brute-force policy and in-process counters (pure, with a fake clock)."""

from __future__ import annotations

import pytest

from keelhaul.auth.settings import ThrottleSettings
from keelhaul.auth.throttle import LocalCounters, Policy, Throttle

pytestmark = pytest.mark.unit


def test_policy_backs_off_exponentially_with_a_cap() -> None:
    p = Policy(threshold=3, window=60, base_delay=1, max_delay=10)
    assert [p.delay(n) for n in range(1, 9)] == [0, 0, 1, 2, 4, 8, 10, 10]


def test_window_resets_the_count() -> None:
    c = LocalCounters()
    p = Policy(threshold=2, window=10, base_delay=5, max_delay=60)
    assert c.fail("k", 0, p) == 0
    assert c.fail("k", 1, p) == 5
    assert c.blocked_for("k", 2) == 4
    assert c.blocked_for("k", 7) == 0
    assert c.fail("k", 20, p) == 0  # a new window


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_account_key_includes_the_ip_and_ip_has_its_own_threshold() -> None:
    clock = Clock()
    t = Throttle(
        ThrottleSettings(max_failures=3, max_failures_per_ip=5, base_delay=2, max_delay=60),
        clock=clock,
    )
    for _ in range(3):
        t.failed("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 2
    assert t.retry_after("alice", "10.0.0.2") == 0  # the owner elsewhere is not locked out
    assert t.retry_after("bob", "10.0.0.1") == 0  # per-IP threshold (5) not reached yet
    t.failed("bob", "10.0.0.1")
    t.failed("carol", "10.0.0.1")  # 5th failure from this IP
    assert t.retry_after("dave", "10.0.0.1") == 2
    clock.now += 2.5
    assert t.retry_after("dave", "10.0.0.1") == 0


def test_disabled_throttle_never_blocks() -> None:
    t = Throttle(ThrottleSettings(enabled=False, max_failures=1))
    for _ in range(10):
        assert t.failed("a", "1.1.1.1") == 0
    assert t.retry_after("a", "1.1.1.1") == 0

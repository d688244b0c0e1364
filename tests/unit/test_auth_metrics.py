"""Batched token-service metrics: written when the batch is old enough, on a scrape or by
the flusher, and then exactly what direct ``inc``/``observe`` calls would have written."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from keelhaul.auth.metrics import FLUSH_SECONDS, Metrics

pytestmark = pytest.mark.unit

VALUES = (0.00005, 0.0003, 0.0003, 0.004, 0.7, 12.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _samples(
    registry: CollectorRegistry, name: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        if family.name == name
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_batched_values_equal_direct_ones() -> None:
    batched_registry, direct_registry = CollectorRegistry(), CollectorRegistry()
    batched, direct = Metrics(batched_registry), Metrics(direct_registry)
    for value in VALUES:
        batched.observe(batched.stage_seconds_for("sign", ""), value)
        direct.stage_seconds_for("sign", "").observe(value)
        batched.add(batched.requests_for("issued", "basic"))
        direct.requests_for("issued", "basic").inc()
    batched.flush()
    for name in ("keelhaul_token_stage_seconds", "keelhaul_token_requests"):
        assert _samples(batched_registry, name) == _samples(direct_registry, name)
        assert _samples(batched_registry, name)


def test_written_when_old_enough_by_a_scrape_and_by_the_flusher() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    metrics = Metrics(registry, clock=clock)
    child = metrics.requests_for("issued", "basic")
    key = ("keelhaul_token_requests_total", (("grant", "basic"), ("outcome", "issued")))

    def count() -> float:
        return _samples(registry, "keelhaul_token_requests").get(key, 0.0)

    try:
        metrics.add(child)
        metrics.settle()
        assert count() == 0  # fresh: batched
        clock.now += 2 * FLUSH_SECONDS
        metrics.settle()
        assert count() == 1  # old enough: written by the next request
        metrics.add(child)
        assert b'outcome="issued"} 2.0' in metrics.render()[0]  # a scrape writes first
        metrics.add(child)  # then nothing more happens: the flusher writes it
        deadline = time.monotonic() + 10
        while count() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert count() == 3
    finally:
        metrics.close()
    assert metrics._flusher is not None and not metrics._flusher.is_alive()

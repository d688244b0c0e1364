"""The scenario registry: one record per scenario, read by everything else."""

from __future__ import annotations

import dataclasses

import pytest

from keelhaul.client.tokens import Credentials
from keelhaul.errors import LoadError
from keelhaul.load.mix import parse_mix
from keelhaul.load.scenarios import FLOW_ENTRIES, SCENARIOS, Scenario, scenario
from keelhaul.load.stats import COMPOSITE_STAGES, RunStats, order_stages
from keelhaul.load.target import Identities

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_has_a_flow_an_identity_and_a_stats_entry(name: str) -> None:
    record = SCENARIOS[name]
    assert record.name == name
    assert record.description
    assert callable(record.flow)
    assert record.identity in ("reader", "admin")
    assert record.entry in COMPOSITE_STAGES
    # the whole-flow entry is listed after the requests and left out of Aggregated
    stats = RunStats(clock=lambda: 1_700_000_000)
    stats.record("token", 10.0, 0, False)
    stats.record(record.entry, 50.0, 0, False)
    assert order_stages(["token", record.entry]) == ["token", record.entry]
    aggregated = stats.summary(1.0)[-1]
    assert aggregated.count == 1


def test_registry_is_frozen_and_names_are_unique() -> None:
    record = SCENARIOS["pull"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "other"  # type: ignore[misc]
    assert len({r.name for r in SCENARIOS.values()}) == len(SCENARIOS)
    assert {r.entry for r in SCENARIOS.values()} == FLOW_ENTRIES


def test_lookup_and_unknown_name_fails_loudly() -> None:
    assert scenario("push") is SCENARIOS["push"]
    with pytest.raises(LoadError, match=r"unknown scenario 'pul'; choose from pull, push"):
        scenario("pul")


def test_mix_accepts_exactly_the_registered_names() -> None:
    for name in SCENARIOS:
        assert parse_mix(f"{name}=1") == ((name, 1.0),)
    with pytest.raises(ValueError, match="unknown scenario 'fetch'"):
        parse_mix("fetch=1")


def test_identity_decides_the_credentials() -> None:
    ids = Identities(pull=Credentials("reader", "r"), push=Credentials("admin", "a"))
    used = {name: ids.for_scenario(record).username for name, record in SCENARIOS.items()}
    assert used == {
        "pull": "reader",
        "push": "admin",
        "login": "reader",
        "browse": "admin",
        "pull-reuse": "reader",
    }
    assert [r.name for r in SCENARIOS.values() if r.needs_push_repo] == ["push"]
    assert isinstance(SCENARIOS["pull-reuse"], Scenario) and SCENARIOS["pull-reuse"].keep_client

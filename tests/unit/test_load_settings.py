"""``keelhaul load`` settings: the mix, durations, rates, sizes, and every consistency rule."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keelhaul.errors import ConfigError
from keelhaul.load.mix import DEFAULT_MIX, Mix, format_mix, parse_mix
from keelhaul.load.scenarios import SCENARIOS
from keelhaul.load.settings import (
    DEFAULT_RUN_TIME_S,
    LoadSettings,
    load_load_settings,
    parse_duration,
    parse_rate,
    parse_size,
)

pytestmark = pytest.mark.unit


# --- the mix ---------------------------------------------------------------------------


def test_default_mix() -> None:
    assert parse_mix(DEFAULT_MIX) == (("pull", 8.0), ("push", 1.0), ("login", 1.0), ("browse", 1.0))
    assert format_mix(parse_mix(DEFAULT_MIX)) == DEFAULT_MIX


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pull", (("pull", 1.0),)),
        (" pull = 3 , push=0.5 ", (("pull", 3.0), ("push", 0.5))),
        ("pull=1,push=0", (("pull", 1.0),)),  # a zero weight leaves the scenario out
        ("pull-reuse=2", (("pull-reuse", 2.0),)),
    ],
)
def test_parse_mix(text: str, expected: tuple[tuple[str, float], ...]) -> None:
    assert parse_mix(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the mix is empty"),
        ("pul=3", "unknown scenario 'pul' in 'pul=3'; choose from pull, push, login, browse"),
        ("pull=x", "weight 'x' of 'pull' is not a number"),
        ("pull=-1", "weight of 'pull' must be a number >= 0"),
        ("pull=nan", "weight of 'pull' must be a number >= 0"),
        ("pull=1,pull=2", "scenario 'pull' appears twice"),
        ("pull=1,,push=1", "empty entry"),
        ("pull=0,push=0", "at least one must be positive"),
    ],
)
def test_bad_mix_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_mix(text)


def test_mix_deals_exact_proportions_interleaved() -> None:
    mix = Mix(parse_mix("pull=8,push=1,login=1,browse=1"))
    first = [mix.next() for _ in range(11)]
    assert Counter(first) == {"pull": 8, "push": 1, "login": 1, "browse": 1}
    assert first[0] == "pull"
    assert first[:2] != ["push", "login"]  # not clumped by scenario
    assert Counter(mix.next() for _ in range(110)) == {
        "pull": 80,
        "push": 10,
        "login": 10,
        "browse": 10,
    }


@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=len(SCENARIOS)))
def test_every_window_of_a_cycle_holds_each_weight(weights: list[int]) -> None:
    names = list(SCENARIOS)[: len(weights)]
    mix = Mix([(n, float(w)) for n, w in zip(names, weights, strict=True)])
    cycle = sum(weights)
    for _ in range(3):
        assert Counter(mix.next() for _ in range(cycle)) == dict(zip(names, weights, strict=True))


# --- durations, rates, sizes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("1m30s", 90.0), ("2h", 7200.0), ("500ms", 0.5), ("1.5s", 1.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "x", "3x", "1m30", "s", "-1", "0"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_zero_duration_where_allowed() -> None:
    assert parse_duration("0", allow_zero=True) == 0.0
    assert parse_duration("0ms", allow_zero=True) == 0.0


@pytest.mark.parametrize(
    ("text", "rate"),
    [("50", 50.0), ("50/s", 50.0), ("300/m", 5.0), ("3600/h", 1.0), ("0.5/s", 0.5)],
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["fast", "50/d", "0/s", "-3"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "size"), [("4096", 4096), ("512k", 512 << 10), ("1MiB", 1 << 20), ("2MB", 2_000_000)]
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


# --- settings ------------------------------------------------------------------------------


def test_defaults() -> None:
    s = LoadSettings()
    assert s.target is None
    assert s.mix_text == DEFAULT_MIX
    assert s.effective_users == 10
    assert s.effective_spawn_rate == 10.0
    assert s.effective_run_time_s == DEFAULT_RUN_TIME_S
    assert not s.open_model
    assert s.worker_processes is None


def test_spellings_from_the_command_line_and_the_environment() -> None:
    s = load_load_settings(
        {"run_time_s": "1m", "rate": "120/m", "layer_size": "64k", "late_after_ms": "25ms"},
        environ={"KEELHAUL_LOAD_MIX": "pull=2,login=1", "KEELHAUL_LOAD_RUN_TIME_S": "5s"},
    )
    assert s.run_time_s == 60.0  # the command line wins
    assert s.rate == 2.0
    assert s.layer_size == 65536
    assert s.late_after_ms == 25.0
    assert s.mix == (("pull", 2.0), ("login", 1.0))


def test_open_model_defaults() -> None:
    assert LoadSettings(rate=50).effective_users == 50
    assert LoadSettings(rate=2).effective_users == 10
    assert LoadSettings(rate=50_000).effective_users == 1000
    assert LoadSettings(rate=50, users=7).effective_users == 7


def test_run_time_default_applies_only_without_another_bound() -> None:
    assert LoadSettings(iterations=5).effective_run_time_s is None
    assert LoadSettings(web=True).effective_run_time_s is None
    assert LoadSettings(run_time_s=3).effective_run_time_s == 3


def test_password_never_printed() -> None:
    s = LoadSettings(username="admin", password="hunter2")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"mix": "pul"}, "--mix: unknown scenario 'pul'"),
        ({"target": "127.0.0.1:5000"}, "--target: '127.0.0.1:5000': give the registry as a URL"),
        ({"target": "http://h/v2/"}, "is not a registry URL"),
        ({"target": "http://u:p@h"}, "is not a registry URL"),
        ({"run_time_s": "3x"}, "--run-time: '3x' is not a duration"),
        ({"rate": "fast"}, "--rate: 'fast' is not a rate"),
        ({"repo": "Team/App"}, "'Team/App' is not a repository name"),
        ({"users": 0}, "--users: Input should be greater than or equal to 1"),
        ({"worker": True, "master": True}, "--worker and --master exclude each other"),
        ({"processes": 2, "master": True}, "--master and --processes exclude each other"),
        ({"processes": 0}, "--processes must be at least 1"),
        ({"processes": 4, "users": 2}, "2 users cannot keep 4 worker processes busy"),
        ({"processes": 4, "iterations": 2, "users": 8}, "--iterations 2 is fewer than the 4"),
        ({"images": 100, "layers": 100, "layer_size": "1MiB"}, "over the 4 GiB kept in memory"),
    ],
)
def test_errors_name_the_option(given: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_load_settings(given, environ={})
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_settings_are_frozen() -> None:
    s = LoadSettings()
    with pytest.raises(ValueError, match="frozen"):
        s.users = 3  # type: ignore[misc]


def test_processes_minus_one_is_one_per_cpu() -> None:
    s = LoadSettings(processes=-1, users=1024)
    assert s.worker_processes is not None
    assert s.worker_processes >= 1

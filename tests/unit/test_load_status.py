"""The live progress core: a RunStats reading -> the status block and the plain line."""

from __future__ import annotations

from typing import Any

import pytest

from keelhaul.load.stats import RunStats
from keelhaul.load.status import (
    Progress,
    RunShape,
    WorkerProgress,
    block_lines,
    plain_line,
    progress_of,
    window,
)

pytestmark = pytest.mark.unit

T0 = 1_700_000_000


def _stats() -> RunStats:
    stats = RunStats(clock=lambda: T0)
    for second in range(10):
        for ms in (10, 20, 30, 40):
            stats.record("blob GET", ms, 1000, False, when=T0 + second)
        stats.record("image pull", 100 + second, 4000, False, when=T0 + second)
    stats.record("token", 5, 0, True, when=T0 + 9, error="RegistryUnauthorized: bad\npassword")
    stats.record("login", 7, 0, True, when=T0 + 9, error="RegistryUnauthorized: bad password")
    return stats


def _open_ended(elapsed_s: float, users: int | None, **extra: Any) -> Progress:
    """``_stats()`` read over its last 5 s, as a run without a time or iteration bound."""
    return progress_of(
        _stats().live(T0 + 5, T0 + 9),
        elapsed_s=elapsed_s,
        seconds=5,
        shape=RunShape(run_time_s=None, iterations=None, rate=None),
        users=users,
        **extra,
    )


def test_reading_counts_so_far_and_rates_over_the_window() -> None:
    stats = _stats()
    p = progress_of(
        stats.live(T0 + 5, T0 + 9),
        elapsed_s=10.5,
        seconds=5,
        shape=RunShape(run_time_s=60, iterations=None, rate=None),
        users=4,
    )
    assert p.requests == 41  # 40 blob GETs + 1 token; whole-flow entries not counted
    assert p.failures == 1
    assert p.fail_ratio == pytest.approx(1 / 41)
    assert p.iterations == 11  # 10 pulls and 1 login
    assert p.rps == pytest.approx(21 / 5)  # 4 per second over 5 s, plus the token
    assert p.bytes_per_s == pytest.approx(4 * 1000)
    assert p.remaining_s == pytest.approx(49.5)
    pull = {e.name: e for e in p.entries}["image pull"]
    assert pull.count == 10
    assert pull.p50_ms is not None and 106.9 < pull.p50_ms < 107.1  # 105..109: median 107
    assert pull.p95_ms is not None and 108.9 < pull.p95_ms < 109.1
    assert [e.name for e in p.entries] == ["image pull", "login"]
    assert p.last_error == "login: RegistryUnauthorized: bad password"


def test_block_shows_time_users_rates_failures_and_flows() -> None:
    p = progress_of(
        _stats().live(T0 + 5, T0 + 9),
        elapsed_s=75,
        seconds=5,
        shape=RunShape(run_time_s=300, iterations=None, rate=None),
        users=4,
        workers=(2, 3),
    )
    text = "\n".join(block_lines(p))
    assert "running 1m15s of 5m00s, 3m45s left" in text
    assert "users 4" in text
    assert "workers 2/3" in text
    assert "requests 41 (4.2/s now)" in text
    assert "failures 1 (2.44%)   last: login: RegistryUnauthorized: bad password" in text
    assert "image pull" in text and "107 ms" in text and "109 ms" in text


def test_open_model_and_iteration_budget() -> None:
    stats = _stats()
    stats.scheduled(30)
    stats.late(20.0, when=T0 + 9)
    stats.dropped(when=T0 + 9, n=2)
    p = progress_of(
        stats.live(T0 + 5, T0 + 9),
        elapsed_s=10,
        seconds=5,
        shape=RunShape(run_time_s=None, iterations=100, rate=2.0),
    )
    block = "\n".join(block_lines(p))
    assert "rate 1.2/s of 2/s, late 1, dropped 2" in block
    assert "iterations 11/100" in block
    line = plain_line(p)
    assert "rate=1.2/2/s late=1 dropped=2" in line
    assert "iterations=11/100" in line
    assert "left=" not in line


def test_plain_line_is_one_greppable_line_without_control_characters() -> None:
    stats = _stats()
    stats.record("token", 5, 0, True, when=T0 + 9, error="boom\x1b[31m\r\nred")
    p = progress_of(
        stats.live(T0 + 5, T0 + 9),
        elapsed_s=12,
        seconds=5,
        shape=RunShape(run_time_s=60, iterations=None, rate=None),
        users=4,
    )
    line = plain_line(p)
    assert line.startswith("progress elapsed=12s left=48s iterations=11 users=4 requests=42 ")
    assert "image_pull.p50=107ms image_pull.p95=109ms" in line
    assert "fail=4.76%" in line
    assert all(ord(c) >= 32 and ord(c) != 127 for c in line), line
    assert "last_error='token: boom [31m  red'" in line


def test_empty_run_reads_as_zeros() -> None:
    p = progress_of(
        RunStats(clock=lambda: T0).live(T0, T0 - 1),
        elapsed_s=0,
        seconds=0,
        shape=RunShape(run_time_s=None, iterations=None, rate=None),
    )
    assert (p.requests, p.failures, p.rps, p.entries, p.last_error) == (0, 0, 0.0, (), None)
    assert "failures 0 (0.00%)" in block_lines(p)[2]
    assert "users -" in block_lines(p)[0]


def test_merged_deltas_carry_the_latest_error() -> None:
    worker = RunStats(clock=lambda: T0)
    worker.record("token", 5, 0, True, when=T0, error="RegistryUnreachable: refused")
    master = RunStats(clock=lambda: T0)
    master.merge(worker.take_delta(), source="w1")
    assert master.live(T0, T0).last_error == ("token", "RegistryUnreachable: refused")
    assert master.live(T0, T0).window["token"].failures == 1


def test_diagnosis_seconds_watched_are_shown_with_diagnose() -> None:
    p = _open_ended(30, 4, diagnosis_s=42.7)
    assert block_lines(p)[-1] == "diagnosis: watching the stack, 42s"
    assert " diagnosis=42s " in plain_line(p)
    known = _open_ended(30, None, diagnosis_s=42.7, diagnosis_top=("auth", 1.4234))
    assert block_lines(known)[-1] == (
        "diagnosis: watching the stack, 42s; highest CPU demand so far: auth (1.42 CPUs)"
    )
    assert " diagnosis=42s diagnosis_top=auth:1.42 " in plain_line(known)


def test_reading_sums_histograms_of_the_whole_flow_entries_only() -> None:
    """The display shows percentiles of whole flows only: a request stage's window keeps its
    counts, bytes and slowest sample, and no histogram (summing those was most of a frame)."""
    view = _stats().live(T0 + 5, T0 + 9)
    blob, pull = view.window["blob GET"], view.window["image pull"]
    assert (blob.count, blob.bytes, blob.max_us) == (20, 20_000, 40_000)
    assert dict(blob.items()) == {}
    assert pull.count == 5 and sum(count for _, count in pull.items()) == 5


def test_a_workers_line_and_block_show_its_own_share() -> None:
    p = _open_ended(10.5, 3)
    shown = WorkerProgress("10.0.0.5:5557", True, "running", p)
    line = shown.line()
    assert line.startswith("worker progress master=10.0.0.5:5557 connected=yes state=running ")
    assert " users=3 requests=41 rps=4.2 failures=1 fail=2.44% " in line
    assert "\n" not in line and all(ord(c) >= 32 for c in line)
    block = shown.block()
    assert block[0] == (
        "worker of 10.0.0.5:5557 (connected): running, users 3, requests 41 (4.2/s now), "
        "failures 1 (2.44%)"
    )
    assert block[1] == "last: login: RegistryUnauthorized: bad password"
    gone = WorkerProgress("10.0.0.5:5557", False, "stopped", p)
    assert "connected=no state=stopped" in gone.line()
    assert "41 requests sent, 1 failures" in gone.stopped_line()


def test_the_window_is_the_last_complete_seconds_and_none_before_the_start() -> None:
    assert window(T0 + 20.5, T0) == (T0 + 15, T0 + 19)
    assert window(T0 + 20.5, T0 + 18.2) == (T0 + 18, T0 + 19)
    assert window(T0 + 20.5, T0, lag_s=4) == (T0 + 11, T0 + 15)
    assert window(T0 + 20.5, None) == (T0 + 15, T0 + 19)


def test_a_test_stopped_from_the_web_ui_says_what_it_did() -> None:
    p = _open_ended(75, 4)
    assert p.stopped_line().startswith(
        "test stopped after 1m15s: 11 iterations, 41 requests, 1 failures (2.44%);"
    )

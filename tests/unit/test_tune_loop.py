"""keelhaul tune's loop over scripted runs: which change it tries, keeps or reverts, when it
tries a reverted change again, and when it measures the noise again. The loop's real runs
(stacks, load, diagnosis) are in tests/e2e/test_tune.py; here each run's measurement and
verdict are given, so every branch of the loop can be shown."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from keelhaul.stack.settings import StackSettings
from keelhaul.tune.journey import Goal, Measurement
from keelhaul.tune.measure import LoadShape, StepReports
from keelhaul.tune.session import TuneRequest, _Tuner

pytestmark = pytest.mark.unit

SHARED = "redis://127.0.0.1:6390/0"
START = {
    **StackSettings().recorded(),
    "redis_url": SHARED,
    "proxy_workers": 1,
    "proxy_connections": 48,
    "credential_cache": True,
}


def run(
    flows: float, tier: str, failed: float = 0.0, also: tuple[str, ...] = ()
) -> tuple[Measurement, dict[str, Any]]:
    n = 1000
    m = Measurement(
        flows_per_s=flows, rps=flows * 10, p50_ms=10.0, p95_ms=50.0,
        flows=n, failed_flows=int(failed * n), goal=flows,
    )  # fmt: skip
    diagnosis = {
        "verdict": {
            "tier": tier,
            "label": tier,
            "findings": [{"tier": t, "score": 0.9} for t in (tier, *also)],
        },
        "signals": {"host_busy": 0.5},
    }
    return m, diagnosis


class Stack:
    """Records what tune asked to change; the real reconfigure is tested on real stacks."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def reconfigure(self, changes: Mapping[str, Any], progress: Any = None) -> None:
        self.calls.append(dict(changes))


class Scripted(_Tuner):
    def __init__(self, tmp: Path, runs: list[tuple[Measurement, dict[str, Any]]]) -> None:
        shape = LoadShape(mix=None, users=2, rate=None, seconds=1.0)
        req = TuneRequest(shape=shape, goal=Goal(), out_dir=tmp, budget=5, stack_dir=tmp)
        self.fake = Stack()
        super().__init__(req, self.fake, dict(START), say=self.lines.append)  # type: ignore[arg-type]
        self.runs: Iterator[tuple[Measurement, dict[str, Any]]] = iter(runs)

    lines: list[str] = []

    def measure(self, label: str) -> tuple[StepReports, Measurement]:
        m, diagnosis = next(self.runs)
        return StepReports(load={}, diagnosis=diagnosis, directory=Path(label)), m


@pytest.fixture(autouse=True)
def _fresh_lines() -> None:
    Scripted.lines = []


def test_a_change_reverted_under_another_limit_is_tried_again_once_that_limit_is_gone(
    tmp_path: Path,
) -> None:
    tuner = Scripted(
        tmp_path,
        [
            # baseline twice (no noise): Redis first, nginx refusing connections too
            run(50, "redis", also=("proxy",)), run(50, "redis", also=("proxy",)),
            run(51, "proxy"),  # own Redis: +2 % while nginx refuses: reverted
            run(80, "redis"),  # nginx connections: kept
            run(160, "none"),  # own Redis again: now it helps
        ],
    )  # fmt: skip
    journey = tuner.run()
    outcomes = [(s.label, s.outcome) for s in journey.steps]
    assert outcomes == [
        ("baseline", "baseline"),
        ("baseline again", "baseline"),
        ("own Redis", "reverted"),
        ("nginx worker_connections", "kept"),
        ("own Redis", "kept"),
        ("stop", "stop"),
    ]
    assert journey.final_settings["redis_url"] is None
    assert any("trying own Redis" in line and "again" in line for line in tuner.lines)


def test_a_reverted_change_is_not_tried_again_while_nothing_else_changed(
    tmp_path: Path,
) -> None:
    tuner = Scripted(
        tmp_path,
        [run(50, "redis"), run(50, "redis"), run(51, "redis")],
    )
    journey = tuner.run()
    assert [s.outcome for s in journey.steps] == ["baseline", "baseline", "reverted", "stop"]
    assert tuner.fake.calls == [{"redis_url": None}, {"redis_url": SHARED}]


def test_noise_from_a_stack_failing_most_flows_is_measured_again_after_the_fix(
    tmp_path: Path,
) -> None:
    tuner = Scripted(
        tmp_path,
        [
            run(0.7, "proxy", failed=1.0), run(0.3, "proxy", failed=1.0),  # noise 57 %
            run(30, "redis"),  # nginx connections: failures gone, kept
            run(31, "redis"),  # the same stack again: noise 3 %
            run(40, "none"),  # own Redis: +31 %, beyond the new bar (6 %), kept
        ],
    )  # fmt: skip
    journey = tuner.run()
    assert [(s.label, s.outcome) for s in journey.steps][2:] == [
        ("nginx worker_connections", "kept"),
        ("nginx worker_connections again", "baseline"),
        ("own Redis", "kept"),
        ("stop", "stop"),
    ]
    assert journey.noise == pytest.approx(1 / 31)
    assert journey.threshold == pytest.approx(2 / 31)


def test_noise_from_a_working_stack_is_not_measured_again(tmp_path: Path) -> None:
    tuner = Scripted(
        tmp_path,
        [run(30, "proxy"), run(31, "proxy"), run(45, "none")],
    )
    journey = tuner.run()
    assert [s.outcome for s in journey.steps] == ["baseline", "baseline", "kept", "stop"]

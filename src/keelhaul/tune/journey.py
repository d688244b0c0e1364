"""The journey's arithmetic. Pure: goals, run-to-run noise, keep or revert, the steps.

A change is kept only when the goal improves by more than the noise: the relative
difference between two runs of the unchanged baseline, doubled, and never less than
``MIN_GAIN``. One lucky run must not pass for a better stack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from keelhaul.errors import TuneError

__all__ = [
    "MIN_GAIN",
    "Goal",
    "Measurement",
    "Outcome",
    "Step",
    "gain",
    "measurement_from_report",
    "noise",
    "parse_goal",
    "threshold",
]

MIN_GAIN = 0.05
"""A change must win by at least 5 %, whatever the noise measured."""

_GOAL = re.compile(r"^(?P<stage>[^:]+):(?P<metric>p50|p90|p95|p99|mean)$")


@dataclass(frozen=True)
class Goal:
    """``throughput`` (requests/s, higher is better) or a stage's latency (lower is better)."""

    stage: str | None = None
    metric: str = "throughput"

    @property
    def text(self) -> str:
        return "throughput" if self.stage is None else f"{self.stage}:{self.metric}"

    @property
    def higher_is_better(self) -> bool:
        return self.stage is None


def parse_goal(text: str) -> Goal:
    text = text.strip()
    if text in ("", "throughput"):
        return Goal()
    m = _GOAL.match(text)
    if m is None:
        raise TuneError(
            f"--goal {text!r}: use 'throughput' or STAGE:METRIC with METRIC one of "
            "p50, p90, p95, p99, mean (e.g. 'image pull:p95')"
        )
    return Goal(stage=m["stage"].strip(), metric=m["metric"])


@dataclass(frozen=True)
class Measurement:
    """One load run, from its ``keelhaul.load/v1`` report."""

    rps: float
    p50_ms: float | None
    p95_ms: float | None
    requests: int
    failures: int
    goal: float | None
    """The goal's value in this run (None: the goal's stage saw no request)."""

    @property
    def fail_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def measurement_from_report(doc: Mapping[str, Any], goal: Goal) -> Measurement:
    agg = doc["aggregated"]
    value: float | None
    if goal.stage is None:
        value = float(agg["rps"])
    else:
        row = next((r for r in doc["stages"] if r["stage"] == goal.stage), None)
        value = None if row is None or not row["count"] else row.get(f"{goal.metric}_ms")
    return Measurement(
        rps=float(agg["rps"]),
        p50_ms=agg.get("p50_ms"),
        p95_ms=agg.get("p95_ms"),
        requests=int(agg["count"]),
        failures=int(agg["failures"]),
        goal=None if value is None else float(value),
    )


def noise(a: Measurement, b: Measurement) -> float:
    """Relative difference of the goal between two runs of the same stack."""
    if a.goal is None or b.goal is None:
        return 1.0
    top = max(abs(a.goal), abs(b.goal))
    return abs(a.goal - b.goal) / top if top else 0.0


def threshold(measured_noise: float) -> float:
    return max(MIN_GAIN, 2 * measured_noise)


def gain(goal: Goal, before: Measurement, after: Measurement) -> float | None:
    """Relative improvement of the goal (positive: better); None when not comparable."""
    if before.goal is None or after.goal is None or before.goal == 0:
        return None
    change = (after.goal - before.goal) / abs(before.goal)
    return change if goal.higher_is_better else -change


Outcome = Literal["baseline", "kept", "reverted", "stop", "recommended"]


@dataclass(frozen=True)
class Step:
    """One row of the journey."""

    index: int
    label: str
    verdict: Mapping[str, Any]
    """The diagnosis' verdict of this run (tier, label, title, evidence...)."""
    measurement: Measurement | None
    outcome: Outcome
    change: str | None = None
    why: str | None = None
    gain: float | None = None
    reason: str | None = None
    """Why kept/reverted/stopped, in words."""
    report_dir: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

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
    "decide",
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
    """``throughput`` (successful whole flows per second: pulls, pushes, logins, browses;
    higher is better) or a stage's latency (lower is better).

    Flows, not requests: a proxy that refuses connections answers fast, and its failures
    must never count as throughput; a flow counts only when every request in it succeeded.
    """

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

    flows_per_s: float
    """Whole flows (image pull, push, login, browse) that succeeded, per second."""
    rps: float
    """Requests per second, failed ones included (what the stack was asked to serve)."""
    p50_ms: float | None
    p95_ms: float | None
    flows: int
    failed_flows: int
    goal: float | None
    """The goal's value in this run (None: the goal's stage saw no request)."""

    @property
    def fail_ratio(self) -> float:
        return self.failed_flows / self.flows if self.flows else 0.0


def measurement_from_report(doc: Mapping[str, Any], goal: Goal) -> Measurement:
    agg = doc["aggregated"]
    flows = [r for r in doc["stages"] if r["stage"] in set(doc.get("composite_stages") or [])]
    count = sum(int(r["count"]) for r in flows)
    failed = sum(int(r["failures"]) for r in flows)
    seconds = float(doc["run"]["duration_s"]) or 1.0
    ok_rate = (count - failed) / seconds
    value: float | None
    if goal.stage is None:
        value = ok_rate
    else:
        row = next((r for r in doc["stages"] if r["stage"] == goal.stage), None)
        value = None if row is None or not row["count"] else row.get(f"{goal.metric}_ms")
    return Measurement(
        flows_per_s=ok_rate,
        rps=float(agg["rps"]),
        p50_ms=agg.get("p50_ms"),
        p95_ms=agg.get("p95_ms"),
        flows=count,
        failed_flows=failed,
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


FEWER_FAILURES = 0.10
"""A change that removes at least this share of failing flows is kept even when the goal
does not move beyond the noise (it did not get worse beyond it): the field report's first
fixes did exactly that, turning refused connections into slow answers."""


def decide(goal: Goal, before: Measurement, after: Measurement, limit: float) -> tuple[bool, str]:
    """Keep or revert, and why in words."""
    g = gain(goal, before, after)
    shown = "not comparable" if g is None else f"{100 * g:+.0f}%"
    more_failures = after.fail_ratio > before.fail_ratio + 0.01
    fewer_failures = after.fail_ratio <= before.fail_ratio - FEWER_FAILURES
    if g is not None and g > limit and not more_failures:
        return True, f"{goal.text} {shown}"
    if fewer_failures and (g is None or g > -limit):
        return True, (
            f"failed flows {100 * before.fail_ratio:.0f}% -> {100 * after.fail_ratio:.0f}% "
            f"({goal.text} {shown})"
        )
    if g is not None and g > limit:
        return False, f"{goal.text} {shown}, but more flows failed"
    return False, f"{goal.text} {shown}, not beyond the noise ({100 * limit:.0f}%)"


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

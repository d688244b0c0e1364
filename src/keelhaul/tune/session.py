"""The journey on a local stack (measure, diagnose, change, measure; keep or revert), and
the single diagnosed run on a remote one, whose recommendation is printed, never applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from keelhaul.diagnose.targets import available_cores
from keelhaul.errors import KeelhaulError, TuneError
from keelhaul.stack import Stack
from keelhaul.tune.journey import (
    Goal,
    Measurement,
    Outcome,
    Step,
    decide,
    gain,
    measurement_from_report,
    noise,
    threshold,
)
from keelhaul.tune.measure import LoadShape, StepReports, evidence, run_step
from keelhaul.tune.moves import MOVES, STOP_TIERS, Context, Proposal, recommend, untunable

__all__ = ["Journey", "TuneRequest", "tune_local", "tune_remote"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class TuneRequest:
    shape: LoadShape
    goal: Goal
    out_dir: Path
    budget: int = 6
    """Changes tried at most (kept or reverted)."""
    stack_dir: Path | None = None
    env: Mapping[str, str] | None = None
    stdin: str | None = None


FAILING_STACK = 0.5
"""A baseline failing at least this share of its flows gives no usable noise figure."""


@dataclass
class Journey:
    goal: Goal
    remote: bool
    steps: list[Step] = field(default_factory=list)
    noise: float | None = None
    threshold: float | None = None
    initial_settings: dict[str, Any] = field(default_factory=dict)
    final_settings: dict[str, Any] = field(default_factory=dict)
    stopped: str = ""
    seconds: float = 0.0
    recommendation: list[str] = field(default_factory=list)

    @property
    def first(self) -> Measurement | None:
        return next((s.measurement for s in self.steps if s.measurement), None)

    @property
    def best(self) -> Measurement | None:
        kept = [s.measurement for s in self.steps if s.outcome in ("baseline", "kept")]
        return kept[-1] if kept else None


def _verdict(reports: StepReports) -> dict[str, Any]:
    v = dict(reports.diagnosis.get("verdict") or {})
    return {
        "tier": v.get("tier", ""),
        "label": v.get("label", v.get("tier", "")),
        "title": v.get("title", ""),
        "confidence": v.get("confidence", ""),
        "evidence": list(evidence(reports.diagnosis)),
        "next_steps": list(v.get("next_steps") or []),
    }


def _describe(m: Measurement) -> str:
    p95 = "-" if m.p95_ms is None else f"{m.p95_ms:.0f} ms"
    fails = f", {100 * m.fail_ratio:.0f}% of flows failed" if m.failed_flows else ""
    return f"{m.flows_per_s:.1f} flows/s ok, {m.rps:.0f} req/s, p95 {p95}{fails}"


def _host_limited(diagnosis: Mapping[str, Any]) -> bool:
    signals = diagnosis.get("signals") or {}
    busy = signals.get("host_busy")
    return busy is not None and float(busy) >= 0.9


def tune_local(req: TuneRequest, say: Say) -> Journey:
    if req.stack_dir is None:
        raise TuneError("tune needs a local stack (--dir) or a remote one (--target)")
    stack = Stack(req.stack_dir)
    state = stack.read()
    if state is None or state.status != "running":
        raise TuneError(
            f"no running stack in {req.stack_dir}; start one with "
            f"keelhaul stack up --dir {req.stack_dir} (with the knobs you run today)"
        )
    return _Tuner(req, stack, dict(state.settings), say).run()


class _Tuner:
    def __init__(self, req: TuneRequest, stack: Stack, settings: dict[str, Any], say: Say):
        self.req, self.stack, self.settings, self.say = req, stack, settings, say
        self.cores = available_cores()
        self.journey = Journey(goal=req.goal, remote=False, initial_settings=dict(settings))
        self.tried: list[Proposal] = []
        """Changes tried since the last kept one: not proposed again until the stack changes
        (a change reverted while another tier limited may help once that limit is gone)."""
        self.noise_from_failing = False
        """The noise was measured on a stack failing most of its flows (a few successful flows
        per second swing by tens of percent): measured again once a change has fixed that."""

    def measure(self, label: str) -> tuple[StepReports, Measurement]:
        index = len(self.journey.steps)
        out = self.req.out_dir / f"{index:02d}-{label.replace(' ', '-')}"
        self.say(f"[step {index}] {label}: {self.req.shape.seconds:g} s of load, diagnosed ...")
        reports = run_step(self.req.shape, out, stack_dir=self.req.stack_dir, env=self.req.env)
        return reports, measurement_from_report(reports.load, self.req.goal)

    def run(self) -> Journey:
        t0 = time.monotonic()
        journey = self.journey
        reference, current = self.baseline()
        changes = 0
        while True:
            tier = str((current.diagnosis.get("verdict") or {}).get("tier", ""))
            if tier in STOP_TIERS:
                journey.stopped = STOP_TIERS[tier]
                break
            ctx = Context(settings=self.settings, cores=self.cores, diagnosis=current.diagnosis)
            proposal = recommend(ctx, self.tried)
            if proposal is None:
                if _host_limited(current.diagnosis):
                    journey.stopped = (
                        "the host's CPUs are the limit: each tier that could use more has it"
                    )
                else:
                    journey.stopped = untunable(ctx) or "no remaining recommendation helps"
                break
            if changes >= self.req.budget:
                journey.stopped = f"budget spent ({self.req.budget} changes)"
                break
            changes += 1
            again = (
                " again: reverted earlier, the stack has changed since"
                if any(_same(proposal, s) for s in self.journey.steps)
                else ""
            )
            self.say(f"[change {changes}] {proposal.tier}: trying {proposal.text}{again}")
            reference, current = self.attempt(proposal, reference, current)
        last = journey.steps[-1]
        journey.steps.append(
            replace(last, index=len(journey.steps), label="stop", outcome="stop",
                    change=None, why=None, gain=None, reason=journey.stopped,
                    verdict=_verdict(current), measurement=None)
        )  # fmt: skip
        self.say(f"stopped: {journey.stopped}")
        journey.final_settings = self.settings
        journey.seconds = time.monotonic() - t0
        return journey

    def baseline(self) -> tuple[Measurement, StepReports]:
        """The unchanged stack twice: the run-to-run noise every change must beat."""
        runs: list[tuple[StepReports, Measurement]] = []
        for label in ("baseline", "baseline again"):
            reports, m = self.measure(label)
            runs.append((reports, m))
            self.journey.steps.append(
                Step(len(self.journey.steps), label, _verdict(reports), m, "baseline",
                     report_dir=str(reports.directory), settings=dict(self.settings))
            )  # fmt: skip
            self.say(f"  {_describe(m)}; verdict: {_verdict(reports)['label']}")
        (_, first), (current, second) = runs
        self._set_noise(first, second)
        return _mean(first, second), current

    def _set_noise(self, first: Measurement, second: Measurement) -> None:
        self.journey.noise = noise(first, second)
        self.journey.threshold = threshold(self.journey.noise)
        self.noise_from_failing = min(first.fail_ratio, second.fail_ratio) >= FAILING_STACK
        failing = (
            f" (measured while {100 * min(first.fail_ratio, second.fail_ratio):.0f}% of flows "
            "failed: measured again once a change fixes that)"
            if self.noise_from_failing
            else ""
        )
        self.say(
            f"  run-to-run noise {100 * self.journey.noise:.1f}%: a change must win by more "
            f"than {100 * self.journey.threshold:.0f}% to be kept{failing}"
        )

    def remeasure_noise(self, kept: Measurement, label: str) -> tuple[Measurement, StepReports]:
        """The kept stack once more: the noise of a stack that answers replaces the noise of
        one that failed most of its flows."""
        reports, again = self.measure(f"{label} again")
        self.journey.steps.append(
            Step(len(self.journey.steps), f"{label} again", _verdict(reports), again,
                 "baseline", reason="run-to-run noise measured again",
                 report_dir=str(reports.directory), settings=dict(self.settings))
        )  # fmt: skip
        self.say(f"  {_describe(again)}; verdict: {_verdict(reports)['label']}")
        self._set_noise(kept, again)
        return _mean(kept, again), reports

    def attempt(
        self, proposal: Proposal, reference: Measurement, current: StepReports
    ) -> tuple[Measurement, StepReports]:
        """Apply, measure, keep or revert; returns the new reference and diagnosis."""
        goal, limit = self.req.goal, self.journey.threshold or 0.0
        try:
            self.stack.reconfigure(proposal.changes, progress=lambda m: self.say(f"  {m}"))
            reports, m = self.measure(proposal.move.name)
        except KeelhaulError:
            _restore(self.stack, proposal, self.say)
            raise
        g = gain(goal, reference, m)
        keep, reason = decide(goal, reference, m, limit)
        outcome: Outcome
        if keep:
            self.settings.update(proposal.changes)
            outcome = "kept"
            reference, current = m, reports
            self.tried.clear()
        else:
            _restore(self.stack, proposal, self.say)
            outcome = "reverted"
            self.tried.append(proposal)
        self.journey.steps.append(
            Step(len(self.journey.steps), proposal.move.name, _verdict(reports), m, outcome,
                 change=proposal.diff, why=proposal.move.why, gain=g, reason=reason,
                 report_dir=str(reports.directory), settings=dict(self.settings))
        )  # fmt: skip
        self.say(f"  {_describe(m)}: {outcome} ({reason})")
        if keep and self.noise_from_failing and m.fail_ratio < FAILING_STACK:
            reference, current = self.remeasure_noise(m, proposal.move.name)
        self.say(f"  journey so far: {self._so_far()}")
        return reference, current

    def _so_far(self) -> str:
        parts = []
        for s in self.journey.steps:
            if s.measurement is not None and s.outcome != "reverted":
                parts.append(f"{s.label} {s.measurement.flows_per_s:.1f}")
        return " -> ".join(parts) + " flows/s"


def _restore(stack: Stack, proposal: Proposal, say: Say) -> None:
    say(f"  reverting {proposal.move.name}")
    stack.reconfigure(proposal.before, progress=lambda m: say(f"  {m}"))


def _same(proposal: Proposal, step: Step) -> bool:
    """``step`` tried (and reverted) the change ``proposal`` makes."""
    return step.outcome == "reverted" and step.change == proposal.diff


def _mean(a: Measurement, b: Measurement) -> Measurement:
    goal = None if a.goal is None or b.goal is None else (a.goal + b.goal) / 2
    return replace(
        b,
        flows_per_s=(a.flows_per_s + b.flows_per_s) / 2,
        rps=(a.rps + b.rps) / 2,
        goal=goal,
        flows=a.flows + b.flows,
        failed_flows=a.failed_flows + b.failed_flows,
    )


def tune_remote(req: TuneRequest, say: Say) -> Journey:
    """One diagnosed run; the recommendation is printed with its evidence, not applied."""
    t0 = time.monotonic()
    say(f"[step 0] remote stack: {req.shape.seconds:g} s of load, diagnosed ...")
    reports = run_step(req.shape, req.out_dir / "00-remote", stack_dir=None,
                       env=req.env, stdin=req.stdin)  # fmt: skip
    m = measurement_from_report(reports.load, req.goal)
    verdict = _verdict(reports)
    journey = Journey(goal=req.goal, remote=True)
    tier = verdict["tier"]
    if tier in STOP_TIERS:
        journey.stopped = STOP_TIERS[tier]
    else:
        journey.recommendation = [f"{mv.name}: {mv.why}" for mv in MOVES if tier in mv.answers]
        journey.recommendation += verdict["next_steps"]
        journey.stopped = (
            "remote stack: recommended change NOT applied (tune changes local stacks only)"
        )
    journey.steps.append(
        Step(0, "remote", verdict, m, "recommended", reason=journey.stopped,
             report_dir=str(reports.directory))
    )  # fmt: skip
    journey.seconds = time.monotonic() - t0
    return journey

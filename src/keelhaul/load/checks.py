"""CI thresholds: ``--check 'image pull:p95<800ms'``, ``--check 'fail_ratio<0.01'``.

Grammar: ``[STAGE:]METRIC OP VALUE[UNIT]``. The stage is everything before the last ``:``
(stage names may contain spaces); without one the check applies to the ``Aggregated`` row.

==================================  ==========================================  =================
metric                              units (default first)                       example
==================================  ==========================================  =================
``p50 p90 p95 p99 p999 max mean``   ``ms``, ``us`` (or ``µs``), ``s``           ``p95<800ms``
``rps``                             requests per second, ``/s`` allowed         ``rps>500/s``
``bytes_per_s``                     ``B KB MB GB KiB MiB GiB``, ``/s`` allowed  ``bytes_per_s>50MB``
``fail_ratio``                      a ratio, or a percentage with ``%``         ``fail_ratio<1%``
``failures count``                  a plain number                              ``failures==0``
==================================  ==========================================  =================

Operators: ``<  <=  >  >=  ==``. ``p99.9`` is accepted for ``p999``. A check on a stage (or a
run) without requests fails, whatever it asks: a threshold nobody exercised proves nothing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keelhaul.errors import CheckSpecError
from keelhaul.load.stats import AGGREGATED, StageSummary

__all__ = ["METRICS", "Check", "CheckResult", "evaluate", "parse_check", "parse_checks"]

_LATENCY = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
METRICS = (*_LATENCY, "rps", "fail_ratio", "failures", "count", "bytes_per_s")
_ALIASES = {"p99.9": "p999"}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_LATENCY_UNITS = {"ms": 1.0, "us": 0.001, "µs": 0.001, "s": 1000.0}
_BYTE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_SPEC = re.compile(r"^(?P<lhs>.*?)\s*(?P<op><=|>=|==|<|>)\s*(?P<rhs>[^<>=]*)$", re.DOTALL)
_VALUE = re.compile(r"^(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>\S*)$")


@dataclass(frozen=True, slots=True)
class Check:
    """A parsed threshold. ``threshold`` is in the metric's base unit: milliseconds for
    latencies, bytes/s for ``bytes_per_s``, a ratio for ``fail_ratio``."""

    spec: str
    stage: str | None
    metric: str
    op: str
    threshold: float

    @property
    def row(self) -> str:
        return self.stage if self.stage is not None else AGGREGATED


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    actual: float | None
    passed: bool
    reason: str

    @property
    def spec(self) -> str:
        return self.check.spec


def _unit_error(spec: str, metric: str, unit: str, allowed: Sequence[str]) -> CheckSpecError:
    return CheckSpecError(
        f"unknown unit {unit!r} for {metric} in {spec!r}; use one of {', '.join(allowed)}"
    )


def _scale(spec: str, metric: str, unit: str) -> float:
    """The factor that turns VALUE[UNIT] into the metric's base unit."""
    if metric in _LATENCY:
        if not unit:
            return 1.0
        if unit not in _LATENCY_UNITS:
            raise _unit_error(spec, metric, unit, list(_LATENCY_UNITS))
        return _LATENCY_UNITS[unit]
    if metric == "bytes_per_s":
        base = unit.removesuffix("/s") if unit != "/s" else ""
        if not base:
            return 1.0
        if base not in _BYTE_UNITS:
            raise _unit_error(spec, metric, unit, [f"{u}[/s]" for u in _BYTE_UNITS])
        return float(_BYTE_UNITS[base])
    if metric == "rps":
        if unit in ("", "/s"):
            return 1.0
        raise _unit_error(spec, metric, unit, ["/s"])
    if metric == "fail_ratio":
        if unit == "%":
            return 0.01
        if not unit:
            return 1.0
        raise _unit_error(spec, metric, unit, ["%"])
    if unit:
        raise CheckSpecError(f"{metric} takes a plain number, not {unit!r}, in {spec!r}")
    return 1.0


def parse_check(spec: str) -> Check:
    """Parse one ``--check``; raises CheckSpecError naming what is wrong."""
    text = spec.strip()
    match = _SPEC.match(text)
    if not text or match is None:
        raise CheckSpecError(
            f"cannot parse check {spec!r}; expected [STAGE:]METRIC OP VALUE[UNIT] "
            f"with OP one of {' '.join(_OPS)}, e.g. 'image pull:p95<800ms'"
        )
    lhs, op, rhs = match["lhs"], match["op"], match["rhs"].strip()
    stage_part, colon, metric_part = lhs.rpartition(":")
    metric = metric_part.strip()
    metric = _ALIASES.get(metric, metric)
    stage = stage_part.strip() if colon else None
    if metric not in METRICS:
        shown = metric_part.strip() or "(nothing)"
        raise CheckSpecError(
            f"unknown metric {shown!r} in {spec!r}; use one of {', '.join(METRICS)}"
        )
    if colon and not stage:
        raise CheckSpecError(f"empty stage name before ':' in {spec!r}; leave out 'STAGE:' "
                             "to check the Aggregated row")  # fmt: skip
    value = _VALUE.match(rhs)
    if value is None:
        raise CheckSpecError(f"{rhs or '(nothing)'!r} is not a number in {spec!r}")
    threshold = float(value["num"]) * _scale(spec, metric, value["unit"])
    return Check(spec=text, stage=stage, metric=metric, op=op, threshold=threshold)


def parse_checks(specs: Sequence[str]) -> list[Check]:
    return [parse_check(spec) for spec in specs]


def _actual(row: StageSummary, metric: str) -> float | None:
    if metric in _LATENCY:
        value: float | None = getattr(row, f"{metric}_ms")
        return value
    return float(getattr(row, metric))


def _fmt(value: float, metric: str) -> str:
    if metric in _LATENCY:
        return f"{value:.3f} ms".replace(".000 ms", " ms")
    if metric == "bytes_per_s":
        return f"{value:,.0f} B/s"
    if metric == "rps":
        return f"{value:.2f}/s"
    if metric == "fail_ratio":
        return f"{value:.4g}"
    return f"{value:g}"


def evaluate(checks: Sequence[Check], summary: Sequence[StageSummary]) -> list[CheckResult]:
    """Each check against the summary rows (``RunStats.summary``), in the given order."""
    rows = {row.name: row for row in summary}
    results: list[CheckResult] = []
    for check in checks:
        row = rows.get(check.row)
        where = f"stage {check.stage!r}" if check.stage is not None else "the run"
        if row is None or row.count == 0:
            results.append(CheckResult(check, None, False, f"no requests recorded for {where}"))
            continue
        actual = _actual(row, check.metric)
        if actual is None:  # pragma: no cover - only rows without requests lack latencies
            results.append(CheckResult(check, None, False, f"no latency recorded for {where}"))
            continue
        passed = _OPS[check.op](actual, check.threshold)
        limit = f"{check.op} {_fmt(check.threshold, check.metric)}"
        verdict = "within" if passed else "violates"
        reason = f"{check.metric} of {check.row} is {_fmt(actual, check.metric)}, {verdict} {limit}"
        results.append(CheckResult(check, actual, passed, reason))
    return results

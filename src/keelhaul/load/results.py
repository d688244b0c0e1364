"""The end of a run: thresholds evaluated, reports written, the terminal summary composed.

Uses the statistics half of the kit as it is (:mod:`~keelhaul.load.checks`,
:mod:`~keelhaul.load.report_json`, :mod:`~keelhaul.load.report_html`,
:mod:`~keelhaul.load.summary`); only writing the files is I/O. Reports are written before
the checks decide the exit code, so a failed CI run still leaves its evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from keelhaul.atomicfile import write_text as atomic_write_text
from keelhaul.errors import LoadError
from keelhaul.load.checks import Check, CheckResult, evaluate
from keelhaul.load.report_html import render_html
from keelhaul.load.report_json import RunInfo, build_report, dumps
from keelhaul.load.stats import RunStats
from keelhaul.load.summary import render_summary

__all__ = ["Outcome", "conclude", "write_text"]


@dataclass(frozen=True)
class Outcome:
    summary: str
    results: tuple[CheckResult, ...]
    written: tuple[Path, ...]

    @property
    def failures(self) -> list[str]:
        return [f"{r.spec}: {r.reason}" for r in self.results if not r.passed]


def write_text(path: Path, text: str) -> None:
    """Atomically (temporary file + rename), creating the parent directory."""
    atomic_write_text(path, text, error=LoadError)


def conclude(
    stats: RunStats,
    info: RunInfo,
    checks: Sequence[Check],
    *,
    json_path: Path | None,
    html_path: Path | None,
    notes: Sequence[str] = (),
) -> Outcome:
    rows = stats.summary(info.duration_s)
    results = tuple(evaluate(checks, rows))
    written: list[Path] = []
    if json_path is not None or html_path is not None:
        document = build_report(stats, info, results)
        if json_path is not None:
            write_text(json_path, dumps(document))
            written.append(json_path)
        if html_path is not None:
            write_text(html_path, render_html(document))
            written.append(html_path)
    iterations = stats.iterations() if info.model.kind == "open" else None
    summary = render_summary(rows, results, iterations=iterations, notes=notes)
    return Outcome(summary, results, tuple(written))

"""The terminal summary: a fixed-width table of the stages, then the checks.

Pure: it returns the text; the CLI prints it. Latencies in milliseconds (two decimals under
10 ms, one under 10 s, none above), byte rates in SI units (1 MB/s = 10^6 B/s, as in
``--check``), so the columns line up in any terminal of 120 columns or more.
"""

from __future__ import annotations

from collections.abc import Sequence

from keelhaul.load.checks import CheckResult
from keelhaul.load.stats import AGGREGATED, IterationCounts, StageSummary

__all__ = ["format_bytes", "format_ms", "render_summary"]

_COLUMNS = (
    ("Reqs", 9),
    ("Fails", 7),
    ("Fail%", 7),
    ("req/s", 9),
    ("p50", 8),
    ("p90", 8),
    ("p95", 8),
    ("p99", 8),
    ("p99.9", 8),
    ("Max", 8),
    ("Mean", 8),
    ("Bytes/s", 11),
)


def format_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 10_000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def format_bytes(value: float, suffix: str = "/s") -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}{suffix}"
    return f"{value:.0f} B{suffix}"


def _cells(row: StageSummary) -> list[str]:
    return [
        f"{row.count:,}",
        f"{row.failures:,}",
        f"{row.fail_ratio * 100:.2f}%",
        f"{row.rps:.2f}",
        format_ms(row.p50_ms),
        format_ms(row.p90_ms),
        format_ms(row.p95_ms),
        format_ms(row.p99_ms),
        format_ms(row.p999_ms),
        format_ms(row.max_ms),
        format_ms(row.mean_ms),
        format_bytes(row.bytes_per_s),
    ]


def _line(name: str, cells: Sequence[str], name_width: int) -> str:
    shown = name if len(name) <= name_width else name[: name_width - 1] + "…"
    parts = [shown.ljust(name_width)]
    parts += [cell.rjust(width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True)]
    return " ".join(parts).rstrip()


def render_summary(
    rows: Sequence[StageSummary],
    results: Sequence[CheckResult] = (),
    *,
    iterations: IterationCounts | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The table (rows as from ``RunStats.summary``), open-model pacing if given, free-form
    ``notes`` (e.g. lost worker reports), then one PASS/FAIL line per check."""
    name_width = min(max([len("Stage"), *(len(r.name) for r in rows)]) + 1, 28)
    header = _line("Stage", [title for title, _ in _COLUMNS], name_width)
    rule = "-" * len(header)
    lines = [header + "   (latencies in ms)", rule]
    for row in rows:
        if row.name == AGGREGATED:
            lines.append(rule)
        lines.append(_line(row.name, _cells(row), name_width))
    if iterations is not None and iterations.scheduled:
        lines.append("")
        lines.append(
            f"Open model: {iterations.scheduled:,} iterations scheduled, "
            f"{iterations.late:,} started late (max lag {format_ms(iterations.max_lag_ms)} ms), "
            f"{iterations.dropped:,} dropped"
        )
    if notes:
        lines.append("")
        lines.extend(notes)
    if results:
        failed = sum(1 for r in results if not r.passed)
        lines.append("")
        lines.append(f"Checks: {len(results) - failed} passed, {failed} failed")
        spec_width = min(max(len(r.spec) for r in results), 40)
        for result in results:
            verdict = "PASS" if result.passed else "FAIL"
            lines.append(f"  {verdict}  {result.spec.ljust(spec_width)}  {result.reason}")
    return "\n".join(lines) + "\n"

"""The diagnosis in a terminal: the verdict, one line per waterfall, CPU per tier. Pure."""

from __future__ import annotations

from keelhaul.diagnose.analysis import Report
from keelhaul.diagnose.targets import TIER_LABELS

__all__ = ["render_text"]


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 1 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def render_text(report: Report) -> str:
    lines = [report.verdict.text(), ""]
    if report.waterfalls:
        lines.append("where the time went (mean ms per request):")
        for w in report.waterfalls:
            parts = " + ".join(f"{s.name} {_ms(s.seconds)}" for s in w.segments)
            lines.append(f"  {w.stage:<14} {_ms(w.total):>7} = {parts}")
        lines.append("")
    s = report.signals
    if s.tiers:
        lines.append(
            f"CPU by tier over {s.seconds:.0f} s (CPUs of {s.cores}: used / waiting for one):"
        )
        for name, t in sorted(s.tiers.items(), key=lambda kv: -kv[1].demand):
            label = TIER_LABELS.get(name, name)
            waited = f"{t.runq:5.2f}" if t.runq_seen else "    -"
            lines.append(f"  {label:<28} {t.cpu:5.2f} / {waited}")
        if s.other_cores is not None:
            lines.append(f"  {TIER_LABELS['other']:<28} {s.other_cores:5.2f}")
    if report.profile is not None:
        p = report.profile
        if p.hot is not None:
            lines.append("")
            lines.append(f"call graph: {100 * p.hot.share:.0f}% of samples in {p.hot.function}")
            lines.append("  hottest path: " + " → ".join(p.hot.path[-5:]))
        elif p.note:
            lines.append(p.note)
    src = s.source
    where = f" at {src.url}" if src.url else ""
    lines.append(f"source: {src.kind}{where}, a sample every {src.resolution_s:g} s")
    return "\n".join(lines) + "\n"

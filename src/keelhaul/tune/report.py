"""The journey as a table, a ``keelhaul.tune/v1`` JSON document, a self-contained HTML page,
and the tuned knobs in the forms ``keelhaul stack up`` and ``stack render`` accept."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from html import escape
from pathlib import Path
from typing import Any

from keelhaul import __version__
from keelhaul.atomicfile import write_text
from keelhaul.errors import TuneError
from keelhaul.report.jsondoc import clean, dumps
from keelhaul.report.page import bullets, page, table
from keelhaul.stack.reconfigure import LIVE_KNOBS
from keelhaul.stack.redisurl import parse_external_redis, redact_redis_url
from keelhaul.tune.journey import Measurement, Step
from keelhaul.tune.session import Journey

__all__ = [
    "SCHEMA",
    "build_document",
    "render_html",
    "render_table",
    "stack_flags",
    "tuned_env",
    "write_reports",
]

SCHEMA = "keelhaul.tune/v1"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _row(step: Step) -> list[str]:
    m = step.measurement
    verdict = str(step.verdict.get("label") or step.verdict.get("tier") or "-")
    return [
        str(step.index),
        step.label,
        verdict,
        step.change or "-",
        "-" if m is None else f"{m.flows_per_s:.1f}",
        "-" if m is None else f"{m.rps:.0f}",
        "-" if m is None else _ms(m.p50_ms),
        "-" if m is None else _ms(m.p95_ms),
        "-" if m is None else f"{100 * m.fail_ratio:.0f}%",
        step.outcome + (f": {step.reason}" if step.reason else ""),
    ]


HEAD = [
    "#", "step", "verdict", "change", "flows/s", "req/s", "p50 ms", "p95 ms", "failed", "outcome",
]  # fmt: skip


def _fit(text: str, width: int) -> str:
    return (text if len(text) <= width else text[: width - 1] + "…").ljust(width)


def render_table(journey: Journey) -> str:
    """The journey for a terminal: one line per step, then the evidence of each verdict."""
    rows = [HEAD, *(_row(s) for s in journey.steps)]
    widths = [min(max(len(r[i]) for r in rows), 48) for i in range(len(HEAD))]
    lines = []
    for r in rows:
        cells = [
            (c if len(c) <= w else c[: w - 1] + "…").ljust(w)
            for c, w in zip(r, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    for s in journey.steps:
        ev = s.verdict.get("evidence") or []
        if s.outcome != "stop" and ev:
            lines.append(f"step {s.index} ({s.verdict.get('label')}): " + "; ".join(ev))
    return "\n".join(lines) + "\n"


def before_after(journey: Journey) -> str:
    first, best = journey.first, journey.best
    if first is None or best is None:
        return ""

    def show(m: Measurement) -> str:
        return (
            f"{m.flows_per_s:.1f} flows/s ({m.rps:.0f} req/s), p95 {_ms(m.p95_ms)} ms, "
            f"{100 * m.fail_ratio:.0f}% of flows failed"
        )

    return f"before/after: {show(first)} -> {show(best)}"


def _shown(name: str, value: Any) -> Any:
    """An external Redis' URL without its password (which never goes into a report)."""
    if name == "redis_url" and value:
        return parse_external_redis(str(value)).url(password=False)
    return value


def _has_password(settings: Mapping[str, Any]) -> bool:
    url = settings.get("redis_url")
    return bool(url) and parse_external_redis(str(url)).password is not None


def stack_flags(settings: Mapping[str, Any]) -> list[str]:
    """The live knobs as ``keelhaul stack up`` options (defaults left out; an external
    Redis' password too: give it with the URL)."""
    flags = []
    for name, knob in LIVE_KNOBS.items():
        value = _shown(name, settings.get(name))
        if value is None:
            continue
        if isinstance(value, bool):
            flags.append(knob.flag if value else knob.flag.replace("--", "--no-", 1))
        else:
            flags += [knob.flag, str(value)]
    return flags


def tuned_env(settings: Mapping[str, Any], initial: Mapping[str, Any] | None = None) -> str:
    """``KEELHAUL_STACK_*`` lines: ``set -a; . tuned.env`` before ``stack up`` or ``render``.

    A knob the journey took back to its default is written empty when that unsets
    something (an external Redis left for the stack's own: ``KEELHAUL_STACK_REDIS_URL=``,
    so that a stale variable in the environment cannot bring it back)."""
    lines = ["# keelhaul tune: the tuned stack knobs (KEELHAUL_STACK_* settings)"]
    for name in LIVE_KNOBS:
        value = _shown(name, settings.get(name))
        if value is None:
            if name == "redis_url" and (initial or {}).get(name):
                lines.append("# redis_url: the stack's own Redis (the external one was left)")
                lines.append(f"KEELHAUL_STACK_{name.upper()}=")
            continue
        if name == "redis_url" and _has_password(settings):
            lines.append("# redis_url: its password is left out here; add it (redis://:PW@...)")
        shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
        lines.append(f"KEELHAUL_STACK_{name.upper()}={shown}")
    return "\n".join(lines) + "\n"


def _public(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs for a report: an external Redis' password as ``***``."""
    out = dict(settings)
    if out.get("redis_url"):
        out["redis_url"] = redact_redis_url(str(out["redis_url"]))
    return out


def _step_doc(step: Step, root: Path) -> dict[str, Any]:
    doc = asdict(step)
    doc["verdict"] = dict(step.verdict)
    doc["settings"] = _public(step.settings)
    if step.report_dir:
        doc["report_dir"] = os.path.relpath(step.report_dir, root)
    return doc


def build_document(journey: Journey, root: Path) -> dict[str, Any]:
    doc = {
        "schema": SCHEMA,
        "keelhaul_version": __version__,
        "remote": journey.remote,
        "goal": journey.goal.text,
        "noise": journey.noise,
        "threshold": journey.threshold,
        "seconds": journey.seconds,
        "stopped": journey.stopped,
        "initial_settings": _public(journey.initial_settings),
        "final_settings": _public(journey.final_settings),
        "stack_up_flags": stack_flags(journey.final_settings),
        "recommendation": journey.recommendation,
        "steps": [_step_doc(s, root) for s in journey.steps],
    }
    return clean(doc)  # type: ignore[no-any-return]


def _bars(title: str, values: Sequence[tuple[str, float | None]], unit: str, color: str) -> str:
    width, left, row = 760, 170, 26
    height = 16 + row * len(values)
    top = max((v for _, v in values if v is not None), default=0.0) or 1.0
    out = [
        f'<div><h3>{escape(title)}</h3><svg class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value) in enumerate(values):
        y = 8 + i * row
        out.append(f'<text x="4" y="{y + 15}">{escape(label)}</text>')
        if value is None:
            continue
        span = max((width - left - 90) * value / top, 1.0)
        out.append(
            f'<rect x="{left}" y="{y + 3}" width="{span:.1f}" height="{row - 8}" '
            f'fill="{color}"><title>{escape(label)}: {value:.1f} {unit}</title></rect>'
            f'<text x="{left + span + 6:.1f}" y="{y + 15}">{value:.1f} {escape(unit)}</text>'
        )
    out.append("</svg></div>")
    return "".join(out)


def render_html(doc: Mapping[str, Any]) -> str:
    steps = [s for s in doc["steps"] if s["measurement"]]
    labels = [f"{s['index']}. {s['label']}" for s in steps]
    rps = [(lab, s["measurement"]["flows_per_s"]) for lab, s in zip(labels, steps, strict=True)]
    p95 = [(lab, s["measurement"]["p95_ms"]) for lab, s in zip(labels, steps, strict=True)]
    rows = []
    for s in doc["steps"]:
        m = s["measurement"] or {}
        link = "-"
        if s.get("report_dir"):
            d = escape(s["report_dir"])
            link = f'<a href="{d}/diagnosis.html">diagnosis</a> · <a href="{d}/load.html">load</a>'
        ev = "; ".join(s["verdict"].get("evidence") or [])
        rows.append(
            [
                str(s["index"]),
                escape(s["label"]),
                f"<b>{escape(str(s['verdict'].get('label', '')))}</b><br>"
                f'<span class="muted">{escape(ev)}</span>',
                escape(s["change"] or "-"),
                "-" if not m else f"{m['flows_per_s']:.1f}",
                "-" if not m else _ms(m.get("p95_ms")),
                escape(s["outcome"] + (f": {s['reason']}" if s["reason"] else "")),
                link,
            ]
        )
    flags = " ".join(doc["stack_up_flags"]) or "(the defaults)"
    body = [
        '<section><h2>Journey</h2><div class="steps">',
        table(["#", "step", "verdict and evidence", "change", "flows/s", "p95 ms", "outcome",
               "reports"], rows),
        "</div></section>",
        '<section><h2>Across the steps</h2><div class="grid2">',
        _bars("throughput (successful flows per second)", rps, "flows/s", "#4e79a7"),
        _bars("p95 latency", p95, "ms", "#f28e2b"),
        "</div></section>",
        "<section><h2>Result</h2>",
        bullets([
            f"stopped: {doc['stopped']}",
            f"goal: {doc['goal']}; run-to-run noise "
            + ("-" if doc["noise"] is None else f"{100 * doc['noise']:.1f}%"),
            f"tuned stack: keelhaul stack up {flags}",
            *doc["recommendation"],
        ]),
        "</section>",
    ]  # fmt: skip
    header = '<h1>keelhaul tune</h1><span class="sub">the journey, step by step</span>'
    css = (
        "td,th{white-space:normal;text-align:left}"
        ".grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px}"
    )
    return page(
        title="keelhaul tune", header=header, body=body,
        footer=f"keelhaul {doc['keelhaul_version']} · {doc['schema']}", css=css,
    )  # fmt: skip


def write_reports(journey: Journey, out_dir: Path) -> dict[str, Path]:
    """``journey.json``, ``journey.html`` and (local stacks) ``tuned.env`` in ``out_dir``."""
    doc = build_document(journey, out_dir)
    paths = {"json": out_dir / "journey.json", "html": out_dir / "journey.html"}
    write_text(paths["json"], dumps(doc), error=TuneError)
    write_text(paths["html"], render_html(doc), error=TuneError)
    if not journey.remote:
        paths["env"] = out_dir / "tuned.env"
        text = tuned_env(journey.final_settings, journey.initial_settings)
        write_text(paths["env"], text, error=TuneError)
    return paths

"""The ``--html`` report: one self-contained file an operator can open anywhere.

Rendered from the ``keelhaul.load/v1`` document (:func:`~keelhaul.load.report_json.build_report`),
so a saved JSON report can be rendered again. Inline CSS, charts as inline SVG, no script,
no font, no image, no link: a Content-Security-Policy of ``default-src 'none'`` says so to
the browser too, so even a bug in the escaping below could not run anything. Every string
that comes from the run (stage names, error messages, the target URL, labels) is escaped.
The charts are drawn by :mod:`keelhaul.load.report_charts`; the page by :mod:`keelhaul.report.page`.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from keelhaul.load.report_charts import AGG_COLOR, report_charts, stage_colors
from keelhaul.load.stats import AGGREGATED
from keelhaul.load.summary import format_bytes, format_ms
from keelhaul.report.charts import format_clock
from keelhaul.report.page import cell, page, swatch

__all__ = ["render_html"]

_CSS = """
.none{background:var(--code);color:var(--muted)}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;overflow-wrap:anywhere}
tr.agg td{font-weight:600;border-top:2px solid var(--line)}
td.msg{text-align:left;white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,
SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
td.left{white-space:normal}
.line{display:inline-block;width:18px;height:0;border-top:2px solid;margin-right:6px;
vertical-align:middle}
.grid2{margin-top:10px;display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.note{color:var(--muted);font-size:12px;margin:6px 0 0}
.warn{color:var(--bad)}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px;
margin:0 0 16px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 14px}
.kpi .k{color:var(--muted);font-size:12px}.kpi .v{font-size:20px;font-weight:650;
font-variant-numeric:tabular-nums}.kpi .s{color:var(--muted);font-size:12px;overflow-wrap:anywhere}
.kpi.bad .v{color:var(--bad)}
"""


def _summary(doc: Mapping[str, Any], colors: Mapping[str, str]) -> str:
    heads = [
        "Stage",
        "Requests",
        "Failures",
        "Fail %",
        "req/s",
        "p50",
        "p90",
        "p95",
        "p99",
        "p99.9",
        "Max",
        "Mean",
        "Bytes",
        "Bytes/s",
    ]
    out = [
        '<section><h2>Summary <span class="sub">(latencies in ms)</span></h2>',
        '<div class="table"><table><thead><tr>',
    ]
    out += [f"<th>{h}</th>" for h in heads]
    out.append("</tr></thead><tbody>")
    for row in [*doc["stages"], doc["aggregated"]]:
        name = row["stage"]
        agg = name == AGGREGATED
        sw = swatch(colors.get(name, AGG_COLOR))
        opening = '<tr class="agg">' if agg else "<tr>"
        out.append(f"{opening}<td>{sw}{escape(name)}</td>")
        out.append(cell(f"{row['count']:,}"))
        out.append(cell(f"{row['failures']:,}", "bad" if row["failures"] else ""))
        out.append(cell(f"{row['fail_ratio'] * 100:.2f}%", "bad" if row["failures"] else ""))
        out.append(cell(f"{row['rps']:.2f}"))
        for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"):
            out.append(cell(format_ms(row[key])))
        out.append(cell(format_bytes(row["bytes"], "")))
        out.append(cell(format_bytes(row["bytes_per_s"])))
        out.append("</tr>")
    out.append("</tbody></table></div></section>")
    return "".join(out)


def _checks(doc: Mapping[str, Any]) -> str:
    if not doc["checks"]:
        return ""
    out = [
        '<section><h2>Checks</h2><div class="table"><table><thead><tr><th>Result</th>'
        '<th class="left">Check</th><th class="left">Reason</th></tr></thead><tbody>'
    ]
    for check in doc["checks"]:
        badge = (
            '<span class="badge pass">PASS</span>'
            if check["passed"]
            else ('<span class="badge fail">FAIL</span>')
        )
        out.append(
            f"<tr><td>{badge}</td>{cell(check['spec'], 'left')}{cell(check['reason'], 'left')}</tr>"
        )
    out.append("</tbody></table></div></section>")
    return "".join(out)


def _errors(doc: Mapping[str, Any]) -> str:
    if not doc["errors"]:
        return ""
    out = [
        '<section><h2>Errors</h2><div class="table"><table><thead><tr><th>Stage</th>'
        '<th>Count</th><th class="left">Message</th></tr></thead><tbody>'
    ]
    for error in doc["errors"]:
        count = f"{error['count']:,}"
        out.append(f"<tr>{cell(error['stage'])}{cell(count)}{cell(error['message'], 'msg')}</tr>")
    out.append("</tbody></table></div></section>")
    return "".join(out)


def _model_text(model: Mapping[str, Any]) -> str:
    if model["kind"] == "closed":
        return f"closed: {model['users']} users, spawn rate {model['spawn_rate']:g}/s"
    text = (
        f"open: {model['rate']:g} iterations/s; {model['scheduled']:,} scheduled, "
        f"{model['late']:,} late (max lag {format_ms(model['max_lag_ms'])} ms), "
        f"{model['dropped']:,} dropped"
    )
    return text


def _meta(doc: Mapping[str, Any]) -> str:
    run = doc["run"]
    integrity = doc["integrity"]
    items: list[tuple[str, str]] = [
        ("Target", run["target"]),
        ("Started", run["started_at"].replace("T", " ")),
        ("Duration", f"{format_clock(run['duration_s'])} ({run['duration_s']:g} s)"),
        ("Load", _model_text(run["model"])),
        ("Generators", f"{run['mode']}: {run['processes']} process(es) on {run['hosts']} host(s)"),
    ]
    if run["scenario"]:
        mix = ", ".join(f"{name}: {weight:g}" for name, weight in run["scenario"].items())
        items.append(("Scenario", mix))
    for key, value in run["labels"].items():
        items.append((key, value))
    versions = f"keelhaul {run['keelhaul_version']}"
    if run["locust_version"]:
        versions += f", locust {run['locust_version']}"
    items.append(("Versions", versions))
    out = ['<section><h2>Run</h2><dl class="meta">']
    out += [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items]
    problems = []
    if integrity["lost_deltas"]:
        problems.append(f"{integrity['lost_deltas']} worker report(s) lost: counts are low")
    if integrity["clamped"]:
        problems.append(f"{integrity['clamped']} latencies over the histogram range, clamped")
    if problems:
        out.append(
            f'<dt class="warn">Integrity</dt><dd class="warn">{escape("; ".join(problems))}</dd>'
        )
    out.append("</dl></section>")
    return "".join(out)


def _kpis(doc: Mapping[str, Any]) -> str:
    agg = doc["aggregated"]
    ratio = f"{agg['fail_ratio'] * 100:.2f}% failed"
    tiles = [
        ("Requests", f"{agg['count']:,}", f"{agg['rps']:.1f} req/s"),
        ("Failures", f"{agg['failures']:,}", ratio),
        ("p50 / p95", f"{format_ms(agg['p50_ms'])} / {format_ms(agg['p95_ms'])}", "ms"),
        ("p99 / max", f"{format_ms(agg['p99_ms'])} / {format_ms(agg['max_ms'])}", "ms"),
        (
            "Body bytes",
            format_bytes(agg["bytes_per_s"]),
            f"{format_bytes(agg['bytes'], '')} total",
        ),
        ("Duration", format_clock(doc["run"]["duration_s"]), _model_text(doc["run"]["model"])),
    ]
    out = ['<div class="kpis">']
    for label, value, sub in tiles:
        bad = " bad" if label == "Failures" and agg["failures"] else ""
        out.append(
            f'<div class="kpi{bad}"><div class="k">{escape(label)}</div>'
            f'<div class="v">{escape(value)}</div><div class="s">{escape(sub)}</div></div>'
        )
    out.append("</div>")
    return "".join(out)


def render_html(doc: Mapping[str, Any]) -> str:
    """The whole page, from a ``keelhaul.load/v1`` document."""
    stages = [row["stage"] for row in doc["stages"]]
    colors = stage_colors(stages)
    run = doc["run"]
    if doc["checks"]:
        verdict = (
            '<span class="badge pass">checks passed</span>'
            if doc["passed"]
            else '<span class="badge fail">checks failed</span>'
        )
    else:
        verdict = '<span class="badge none">no checks</span>'
    title = f"keelhaul load report: {run['target']}"
    header = (
        f"<h1>keelhaul load report</h1>{verdict}"
        f'<span class="sub">{escape(run["target"])} · {escape(run["started_at"])}</span>'
    )
    body = [
        _kpis(doc),
        _checks(doc),
        _summary(doc, colors),
        report_charts(doc, stages, colors),
        _errors(doc),
        _meta(doc),
    ]
    footer = f"keelhaul {run['keelhaul_version']} · {doc['schema']}"
    return page(title=title, header=header, body=body, footer=footer, css=_CSS)

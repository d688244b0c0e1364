"""The ``--html`` report: one self-contained file an operator can open anywhere.

Rendered from the ``keelhaul.load/v1`` document (:func:`~keelhaul.load.report_json.build_report`),
so a saved JSON report can be rendered again. Inline CSS, charts as inline SVG, no script,
no font, no image, no link: a Content-Security-Policy of ``default-src 'none'`` says so to
the browser too, so even a bug in the escaping below could not run anything. Every string
that comes from the run (stage names, error messages, the target URL, labels) is escaped.
The charts are drawn by :mod:`keelhaul.load.report_charts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from keelhaul.load.charts import format_clock
from keelhaul.load.report_charts import AGG_COLOR, report_charts, stage_colors
from keelhaul.load.stats import AGGREGATED
from keelhaul.load.summary import format_bytes, format_ms

__all__ = ["render_html"]

_CSS = """
:root{--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--muted:#5f6b7a;--line:#e3e6eb;--grid:#eceef2;
--ok:#1a7f37;--bad:#cf222e;--okbg:#dafbe1;--badbg:#ffebe9;--code:#f3f4f6}
@media (prefers-color-scheme:dark){:root{--bg:#0f1218;--card:#171b23;--fg:#e6e9ef;
--muted:#9aa4b2;--line:#2a303b;--grid:#232833;--ok:#3fb950;--bad:#f85149;--okbg:#12261a;
--badbg:#2d1417;--code:#1f2430}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:24px}
header{display:flex;flex-wrap:wrap;align-items:center;gap:12px 20px;margin-bottom:18px}
h1{font-size:22px;margin:0}h2{font-size:16px;margin:0 0 12px}h3{font-size:13px;margin:0 0 6px}
.sub{color:var(--muted)}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;font-size:12px}
.pass{background:var(--okbg);color:var(--ok)}.fail{background:var(--badbg);color:var(--bad)}
.none{background:var(--code);color:var(--muted)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
margin:0 0 16px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;overflow-wrap:anywhere}
.table{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{color:var(--muted);font-weight:600;font-size:12px}
th:first-child,td:first-child{text-align:left}
tr.agg td{font-weight:600;border-top:2px solid var(--line)}
td.bad{color:var(--bad);font-weight:600}
td.msg{text-align:left;white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,
SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
td.left{text-align:left;white-space:normal}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;
vertical-align:baseline}
ul.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0 0;padding:0;
font-size:12px;color:var(--muted)}
.line{display:inline-block;width:18px;height:0;border-top:2px solid;margin-right:6px;
vertical-align:middle}
svg.chart{display:block;width:100%;height:auto}
svg.chart .grid{stroke:var(--grid);stroke-width:1}
svg.chart .frame{stroke:var(--line)}
svg.chart text{fill:var(--muted);font-size:11px;font-family:inherit}
svg.chart text.empty{font-size:13px}
.grid2{margin-top:10px;display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.note{color:var(--muted);font-size:12px;margin:6px 0 0}
.warn{color:var(--bad)}
footer{color:var(--muted);font-size:12px;text-align:center;padding:8px}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px;
margin:0 0 16px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 14px}
.kpi .k{color:var(--muted);font-size:12px}.kpi .v{font-size:20px;font-weight:650;
font-variant-numeric:tabular-nums}.kpi .s{color:var(--muted);font-size:12px;overflow-wrap:anywhere}
.kpi.bad .v{color:var(--bad)}
th.left{text-align:left}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _cell(value: Any, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{escape(str(value))}</td>"


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
        swatch = (
            f'<span class="sw" style="background:{escape(colors.get(name, AGG_COLOR))}"></span>'
        )
        opening = '<tr class="agg">' if agg else "<tr>"
        out.append(f"{opening}<td>{swatch}{escape(name)}</td>")
        out.append(_cell(f"{row['count']:,}"))
        out.append(_cell(f"{row['failures']:,}", "bad" if row["failures"] else ""))
        out.append(_cell(f"{row['fail_ratio'] * 100:.2f}%", "bad" if row["failures"] else ""))
        out.append(_cell(f"{row['rps']:.2f}"))
        for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"):
            out.append(_cell(format_ms(row[key])))
        out.append(_cell(format_bytes(row["bytes"], "")))
        out.append(_cell(format_bytes(row["bytes_per_s"])))
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
            f"<tr><td>{badge}</td>{_cell(check['spec'], 'left')}"
            f"{_cell(check['reason'], 'left')}</tr>"
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
        out.append(
            f"<tr>{_cell(error['stage'])}{_cell(count)}{_cell(error['message'], 'msg')}</tr>"
        )
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
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
            f"<header><h1>keelhaul load report</h1>{verdict}",
            f'<span class="sub">{escape(run["target"])} · {escape(run["started_at"])}</span>',
            "</header>",
            _kpis(doc),
            _checks(doc),
            _summary(doc, colors),
            report_charts(doc, stages, colors),
            _errors(doc),
            _meta(doc),
            f"<footer>keelhaul {escape(run['keelhaul_version'])} · {escape(doc['schema'])} · "
            "self-contained: no scripts, fonts or external resources</footer>",
            "</main></body></html>\n",
        ]
    )

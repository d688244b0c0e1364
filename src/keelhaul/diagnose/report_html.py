"""The diagnosis as one self-contained HTML page, rendered from the ``keelhaul.diagnose/v1``
document (so a saved JSON report renders again).

Verdict first, then the waterfall per stage, the per-tier time series, the signals' tables
and the call graph. Inline CSS, inline SVG, no script, no font, no link, and a
Content-Security-Policy of ``default-src 'none'`` that says so to the browser. Charts come
from the report kit (:mod:`keelhaul.report`); every string from the run is escaped, and
Graphviz's SVG is embedded only when it carries nothing active.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from keelhaul.diagnose.callgraph import short_file
from keelhaul.diagnose.report_charts import TIER_COLORS, charts_section
from keelhaul.diagnose.targets import TIER_LABELS
from keelhaul.report.page import bullets, page, swatch, table

__all__ = ["render_html", "safe_svg"]

_CSS = """
header{align-items:baseline;gap:8px 18px;margin-bottom:16px}
section.verdict{border-left:6px solid var(--bad)}
section.verdict.calm{border-left-color:var(--ok)}
.tier{font-size:24px;font-weight:700;margin:0 0 4px}
.title{font-size:15px;margin:0 0 10px}
ul{margin:4px 0 10px;padding-left:20px}li{margin:2px 0}
.sw{vertical-align:initial}
svg.waterfall{display:block;width:100%;height:auto}
svg.waterfall text{fill:var(--muted);font-size:11px;font-family:inherit}
svg.waterfall text.stage{fill:var(--fg);font-size:12px}
svg.waterfall text.seg{fill:#fff;font-size:10px}
h3{margin-top:14px}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
.callgraph{overflow:auto;max-height:1100px;border:1px solid var(--line);border-radius:8px;
background:#fff}
.callgraph svg{display:block;height:auto;max-width:none}
"""

_ACTIVE = re.compile(
    r"<\s*(script|foreignObject|iframe|object|embed)\b|<[^>]*\son\w+\s*=|<[^>]*javascript:",
    re.IGNORECASE,
)
"""Active content in markup: elements that run or embed, event-handler attributes,
``javascript:`` URLs. (Text such as a function's name is escaped by Graphviz.)"""


def safe_svg(svg: str | None) -> str | None:
    """Graphviz's SVG without its XML prologue; None if it holds anything active."""
    if not svg:
        return None
    start = svg.find("<svg")
    if start < 0 or _ACTIVE.search(svg):
        return None
    return svg[start:]


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict(doc: Mapping[str, Any]) -> str:
    v = doc["verdict"]
    calm = " calm" if v["tier"] in ("none", "no_traffic") else ""
    confidence = f'<span class="badge">confidence: {escape(v["confidence"])}</span>'
    parts = [
        f'<section class="verdict{calm}" id="verdict"><h2>Verdict</h2>',
        f'<p class="tier">{escape(v["label"])}</p>',
        f'<p class="title">{escape(v["title"])} {confidence}</p>',
        "<h3>Evidence</h3>",
        bullets(v["evidence"]),
        "<h3>What to try next</h3>",
        bullets(v["next_steps"]),
    ]
    if v["also"]:
        parts += [
            "<h3>Also saturated</h3>",
            bullets([f"{f['label']}: {f['title']}" for f in v["also"]]),
        ]
    if v["caveats"]:
        parts += ["<h3>Caveats</h3>", bullets(v["caveats"], "muted")]
    parts.append("</section>")
    return "".join(parts)


def _bar(x: float, y: int, span: float, height: int, seg: Mapping[str, Any], shade: bool) -> str:
    color = TIER_COLORS.get(seg["tier"], "#888")
    opacity = "0.62" if shade else "1"
    label = ""
    text = seg["name"].removeprefix("token service: ")
    if span > 6.5 * len(text) + 8:
        label = f'<text class="seg" x="{x + 4:.1f}" y="{y + height - 6}">{escape(text)}</text>'
    return (
        f'<rect x="{x:.1f}" y="{y}" width="{span:.1f}" height="{height}" fill="{color}" '
        f'fill-opacity="{opacity}"><title>{escape(seg["name"])}: {_ms(seg["ms"])} ms</title>'
        f"</rect>{label}"
    )


def _waterfall_svg(falls: Sequence[Mapping[str, Any]]) -> str:
    width, left, right, row = 1000, 150, 70, 30
    height = 20 + row * len(falls)
    longest = max((w["total_ms"] for w in falls), default=0.0) or 1.0
    scale = (width - left - right) / longest
    out = [
        f'<svg class="waterfall" id="waterfall" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="where the time went" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, w in enumerate(falls):
        y = 10 + i * row
        out.append(f'<text class="stage" x="4" y="{y + 17}">{escape(w["stage"])}</text>')
        x, previous, shade = float(left), None, False
        for seg in w["segments"]:
            span = max(seg["ms"] * scale, 0.5)
            shade = not shade if seg["tier"] == previous else False
            out.append(_bar(x, y + 4, span, row - 10, seg, shade))
            x, previous = x + span, seg["tier"]
        out.append(f'<text x="{x + 6:.1f}" y="{y + 17}">{_ms(w["total_ms"])} ms</text>')
    out.append("</svg>")
    return "".join(out)


def _waterfalls(doc: Mapping[str, Any]) -> str:
    falls = doc["waterfalls"]
    head = '<section id="waterfalls"><h2>Where the time went (mean per request)</h2>'
    if not falls:
        return head + '<p class="muted">No stage was seen.</p></section>'
    rows = []
    for w in falls:
        cells = "".join(
            f"<li>{swatch(TIER_COLORS.get(s['tier'], '#888'))}"
            f"{escape(s['name'])}: {_ms(s['ms'])} ms</li>"
            for s in w["segments"]
        )
        rows.append(
            f"<tr><td>{escape(w['stage'])}</td><td>{w['count']:.0f}</td>"
            f"<td>{escape(w['observer'])}</td><td>{_ms(w['total_ms'])}</td>"
            f'<td class="left"><ul>{cells}</ul></td></tr>'
        )
    legend = "".join(
        f"<li>{swatch(c)}{escape(TIER_LABELS.get(t, t))}</li>"
        for t, c in TIER_COLORS.items()
        if t not in ("diagnosis", "other")
    )
    return "".join(
        [
            head,
            _waterfall_svg(falls),
            f'<ul class="legend">{legend}</ul>',
            '<div class="table"><table><tr><th>stage</th><th>requests</th>',
            "<th>measured by</th><th>mean ms</th><th>segments</th></tr>",
            *rows,
            "</table></div></section>",
        ]
    )


def _tier_rows(tiers: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            escape(TIER_LABELS.get(name, name)),
            _num(t["cpu"]),
            _num(t["runq"]),
            _num(t["busiest_thread"]),
            f"{t['procs']:.0f}",
            f"{t['rss_mb']:.0f}",
            _pct(t["throttled_share"]),
            _num(t["cpu_limit"]),
        ]
        for name, t in tiers.items()
    ]


def _stage_rows(stages: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    keys = ("request_mean", "request_p99", "connect_mean", "header_mean", "overhead_mean")
    return [
        [escape(st["name"]), f"{st['rps']:.1f}", f"{st['errors']:.0f}"]
        + [_ms(st[k] * 1000 if st[k] is not None else None) for k in keys]
        for st in stages
    ]


def _tables(doc: Mapping[str, Any]) -> str:
    sig = doc["signals"]
    parts = [
        '<section id="signals"><h2>Signals</h2>',
        f'<p class="muted">{sig["cores"]} CPUs; host busy {_pct(sig["host_busy"])}; '
        f"other processes used {_num(sig['other_cores'])} CPUs.</p>",
        table(
            ["tier", "CPU", "waiting for CPU", "busiest thread", "processes", "RSS MiB",
             "throttled", "CPU limit"],
            _tier_rows(sig["tiers"]),
        ),
    ]  # fmt: skip
    proxy = sig.get("proxy")
    if proxy and proxy["stages"]:
        head = ["stage", "req/s", "errors", "request ms", "p99 ms", "connect ms", "header ms",
                "nginx's own ms"]  # fmt: skip
        parts += ["<h3>Proxy, per stage</h3>", table(head, _stage_rows(proxy["stages"]))]
    redis = sig.get("redis")
    if redis and redis["top_commands"]:
        rows = [
            [
                escape(c["command"]),
                _pct(c["busy_share"]),
                f"{c['usec_per_call']:.1f}",
                f"{c['calls_per_s']:.1f}",
            ]
            for c in redis["top_commands"]
        ]
        head = ["command", "share of busy time", "µs per call", "calls/s"]
        parts += ["<h3>Redis commands, busiest first</h3>", table(head, rows)]
    if doc.get("evidence_log"):
        lines = "\n".join(doc["evidence_log"])
        parts.append(f"<h3>From the logs</h3><pre>{escape(lines)}</pre>")
    parts.append("</section>")
    return "".join(parts)


def _profile(doc: Mapping[str, Any]) -> str:
    p = doc.get("profile")
    if not p:
        return ""
    summary = p.get("summary") or {}
    path = summary.get("hottest_path") or []
    parts = ['<section id="callgraph"><h2>Call graph of the token service\'s workers</h2>']
    if p.get("note"):
        parts.append(f'<p class="muted">{escape(p["note"])}</p>')
    if path:
        steps = " → ".join(escape(step["function"]) for step in path[-6:])
        parts.append(f"<p>Hottest path ({summary.get('samples', 0)} samples): {steps}</p>")
    svg = safe_svg(p.get("svg"))
    if svg:
        parts.append(f'<div class="callgraph">{svg}</div>')
    top = summary.get("top_self") or []
    if top:
        rows = [
            [
                escape(row["function"]),
                escape(short_file(row["file"] or "")),
                _pct(row["self_share"]),
                _pct(row["total_share"]),
            ]
            for row in top
        ]
        head = ["function", "file", "self", "total"]
        parts += ["<h3>Where the samples were (self)</h3>", table(head, rows)]
    parts.append("</section>")
    return "".join(parts)


def _source_line(source: Mapping[str, Any] | None) -> str:
    """Which source fed the report and at what resolution (absent in older documents)."""
    if not source:
        return ""
    where = f" {source['url']}" if source.get("url") else ""
    text = (
        f"source: {source.get('title') or source.get('kind')}{where} · a sample every "
        f"{float(source.get('resolution_s') or 0):g} s · confidence at most "
        f"{source.get('max_confidence', 'high')}"
    )
    if source.get("unseen"):
        text += " · unseen: " + ", ".join(str(t) for t in source["unseen"])
    return f'<br><span class="sub source">{escape(text)}</span>'


def render_html(doc: Mapping[str, Any]) -> str:
    v = doc["verdict"]
    window = doc["window"]
    stack = (doc.get("watched") or {}).get("stack_dir", "")
    title = f"keelhaul diagnosis: {v['label']}"
    header = (
        "<h1>keelhaul diagnosis</h1>"
        f'<span class="sub">{escape(str(stack))} · {escape(str(window.get("start") or ""))} · '
        f"{window['seconds']:.0f} s with traffic, {window['samples']} samples</span>"
        + _source_line(doc.get("source"))
    )
    body = [
        _verdict(doc),
        _waterfalls(doc),
        charts_section(doc["series"]),
        _profile(doc),
        _tables(doc),
    ]
    footer = f"keelhaul {doc['keelhaul_version']} · {doc['schema']}"
    return page(title=title, header=header, body=body, footer=footer, css=_CSS)

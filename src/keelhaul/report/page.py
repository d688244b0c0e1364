"""The self-contained HTML page every keelhaul report is: one file an operator can open anywhere.

Inline CSS, charts as inline SVG, no script, no font, no image, no link: a
Content-Security-Policy of ``default-src 'none'`` says so to the browser too, so even a bug
in a caller's escaping could not run anything. Helpers here escape what they are given as
text; ``table`` takes cells that are HTML already (escaped by the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

__all__ = ["BASE_CSS", "CSP", "bullets", "cell", "page", "swatch", "table"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

BASE_CSS = """
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
.sub,.muted{color:var(--muted)}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;font-size:12px;
background:var(--code);color:var(--muted)}
.pass{background:var(--okbg);color:var(--ok)}.fail{background:var(--badbg);color:var(--bad)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
margin:0 0 16px}
.table{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{color:var(--muted);font-weight:600;font-size:12px}
th:first-child,td:first-child{text-align:left}
td.left{text-align:left;white-space:normal;overflow-wrap:anywhere}
th.left{text-align:left}
td.bad{color:var(--bad);font-weight:600}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;
vertical-align:baseline}
ul.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0 0;padding:0;
font-size:12px;color:var(--muted)}
svg.chart{display:block;width:100%;height:auto}
svg.chart .grid{stroke:var(--grid);stroke-width:1}
svg.chart .frame{stroke:var(--line)}
svg.chart text{fill:var(--muted);font-size:11px;font-family:inherit}
svg.chart text.empty{font-size:13px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font:12px ui-monospace,SFMono-Regular,Menlo,
Consolas,monospace;background:var(--code);padding:8px;border-radius:6px;margin:0}
footer{color:var(--muted);font-size:12px;text-align:center;padding:8px}
"""


def cell(value: Any, cls: str = "") -> str:
    """One ``<td>`` holding ``value`` as escaped text."""
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{escape(str(value))}</td>"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A scrollable table; ``head`` is text, ``rows`` are HTML cells' contents already."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="table"><table><tr>{th}</tr>{body}</table></div>'


def bullets(values: Sequence[str], cls: str = "") -> str:
    """A ``<ul>`` of escaped text items."""
    attr = f' class="{cls}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{escape(v)}</li>" for v in values) + "</ul>"


def swatch(color: str) -> str:
    """A small colour square for legends and table rows."""
    return f'<span class="sw" style="background:{escape(color)}"></span>'


def page(
    *,
    title: str,
    header: str,
    body: Sequence[str],
    footer: str,
    css: str = "",
) -> str:
    """The whole document. ``header`` and ``body`` are HTML; ``title``/``footer`` are text."""
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{BASE_CSS}{css}</style></head><body><main>",
            f"<header>{header}</header>",
            *body,
            f"<footer>{escape(footer)} · "
            "self-contained: no scripts, fonts or external resources</footer>",
            "</main></body></html>\n",
        ]
    )

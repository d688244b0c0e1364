"""Waterfalls add up; the JSON document and the HTML page carry the verdict, escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keelhaul.diagnose.analysis import Profile, analyse
from keelhaul.diagnose.loadreport import client_from_report
from keelhaul.diagnose.report_html import render_html, safe_svg
from keelhaul.diagnose.report_json import SCHEMA, build_document, dumps
from keelhaul.diagnose.summary import render_text
from keelhaul.diagnose.verdict import HotSpot
from support.diagnose_synth import Synth, token_second

pytestmark = pytest.mark.unit

EVIL = "<script>window.pwned=1</script>"


def sync_worker_run() -> Synth:
    s = Synth()
    for _ in range(8):
        token_second(
            s, rps=400, app=0.0003, upstream=0.031, authn=0.00003, cache="local",
            inflight=1.0, capacity=1.0, workers=1.0, queue=14.0,
            tiers={"auth": (0.4, 0.4), "nginx": (0.1, 0.2)}, host=2.0,
            notes={"logs": [f"auth: [CRITICAL] WORKER TIMEOUT {EVIL}"]},
        )  # fmt: skip
    return s


def load_report(start: float) -> dict[str, object]:
    return {
        "schema": "keelhaul.load/v1",
        "run": {"started_at_epoch": start, "duration_s": 7.0},
        "composite_stages": ["login"],
        "stages": [
            {"stage": "token", "count": 2800, "failures": 0, "rps": 400.0, "mean_ms": 35.0,
             "p50_ms": 33.0, "p99_ms": 60.0},
            {"stage": "login", "count": 2800, "failures": 0, "rps": 400.0, "mean_ms": 36.0},
        ],
        "timeline": {"points": [
            {"t": int(start) + i, "stage": st, "count": 400, "failures": 0}
            for i in range(7) for st in ("token", "login", "Aggregated")
        ]},
    }  # fmt: skip


def test_waterfall_segments_add_up_to_the_client_total() -> None:
    s = sync_worker_run()
    client = client_from_report(load_report(s.ticks[0].t))
    report = analyse(s.collection(), client=client)
    (w,) = report.waterfalls
    assert w.stage == "token" and w.observer == "client"
    assert w.total == pytest.approx(0.035)
    assert sum(seg.seconds for seg in w.segments) == pytest.approx(0.035, rel=1e-6)
    names = [seg.name for seg in w.segments]
    assert names[0] == "client: connect, queue, network"
    assert "waiting for a free worker" in names
    assert any(n.startswith("token service: authn (cache local)") for n in names)
    assert dict(client.per_second)[int(s.ticks[0].t)] == (400, 0)  # login is composite


def test_waterfall_without_client_starts_at_the_proxy() -> None:
    (w,) = analyse(sync_worker_run().collection()).waterfalls
    assert w.observer == "proxy"
    assert w.total == pytest.approx(0.031)
    assert sum(seg.seconds for seg in w.segments) == pytest.approx(0.031, rel=1e-6)


def test_document_and_html() -> None:
    s = sync_worker_run()
    step = {"function": EVIL, "file": "/a/b/x.py", "share": 1.0}
    top = {"function": EVIL, "file": "/a/b/x.py", "self_share": 1.0, "total_share": 1.0}
    svg = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><g id="graph0"></g></svg>'
    profile = Profile(
        summary={"samples": 10, "hottest_path": [step], "top_self": [top]},
        dot="digraph{}",
        svg=svg,
        hot=HotSpot(EVIL, 1.0, (EVIL,), 10),
    )
    report = analyse(
        s.collection(), client=client_from_report(load_report(s.ticks[0].t)), profile=profile
    )
    doc = build_document(report)
    assert doc["schema"] == SCHEMA
    assert doc["verdict"]["tier"] == "token_workers"
    assert len(doc["series"]["t"]) == len(doc["series"]["cpu.auth"]) == 8
    assert doc["series"]["client.rps"][0] == 400.0
    assert doc["profile"]["hotspot"]["function"] == EVIL
    text = dumps(doc)
    assert json.loads(text) == doc
    page = render_html(json.loads(text))
    assert "<script" not in page
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert 'id="graph0"' in page and "<?xml" not in page
    assert "token-service workers" in page
    assert page.count('<svg class="chart"') == 9
    assert "Content-Security-Policy" in page


def test_active_svg_is_refused() -> None:
    assert safe_svg("<svg><script>alert(1)</script></svg>") is None
    assert safe_svg('<svg><rect onload="x()"/></svg>') is None
    assert safe_svg("<svg><a href='javascript:x'/></svg>") is None
    assert safe_svg("no svg here") is None
    assert safe_svg("<?xml?><svg><g/></svg>") == "<svg><g/></svg>"


def test_terminal_summary() -> None:
    text = render_text(analyse(sync_worker_run().collection()))
    assert text.startswith("verdict: token-service workers")
    assert "where the time went" in text
    assert "token service" in text


def test_document_matches_its_schema() -> None:
    import jsonschema

    schema_path = Path(__file__).parents[2] / "docs" / "diagnose-report.schema.json"
    schema = json.loads(schema_path.read_text())
    s = sync_worker_run()
    for report in (
        analyse(s.collection()),
        analyse(s.collection(), client=client_from_report(load_report(s.ticks[0].t))),
    ):
        jsonschema.validate(json.loads(dumps(build_document(report))), schema)

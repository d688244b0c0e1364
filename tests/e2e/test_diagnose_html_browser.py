"""The diagnosis' HTML report in a real browser: Debian's headless Chromium, via Playwright.

The report is built from a synthetic run (a one-worker token service) with a call graph
that Graphviz's ``dot`` really lays out, and strings from the run that try to inject markup.
It must load from a file with no console message, no page error and no request but its
own; every chart must be drawn; the waterfall and the call graph must have a real size.
A screenshot lands in ``tests/artifacts/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keelhaul.diagnose.analysis import analyse
from keelhaul.diagnose.callgraph import build, parse_collapsed
from keelhaul.diagnose.profile import analyse_profile
from keelhaul.diagnose.report_html import render_html
from keelhaul.diagnose.report_json import build_document
from support.diagnose_synth import Synth, token_second

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
EVIL = "<img src=x onerror=alert(1)><script>window.pwned=1</script>"
RAW = f"""\
handle (gunicorn/ggevent.py:120);token (keelhaul/auth/app.py:167);issue (keelhaul/auth/service.py:129);authenticate (keelhaul/auth/authn/authenticator.py:87) 800
handle (gunicorn/ggevent.py:120);token (keelhaul/auth/app.py:167);issue (keelhaul/auth/service.py:160);sign (keelhaul/auth/signing.py:50) 150
handle (gunicorn/ggevent.py:120);{EVIL} (evil.py:1) 50
"""  # noqa: E501


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    s = Synth()
    for i in range(30):
        token_second(
            s, rps=400 + 10 * (i % 5), app=0.0003, upstream=0.031, authn=0.00003, cache="local",
            inflight=1.0, capacity=1.0, workers=1.0, queue=10.0 + i % 6,
            tiers={"auth": (0.4, 0.4), "nginx": (0.1, 0.2), "generator": (0.1, 0.1),
                   "diagnosis": (0.02, 0.0)},
            host=2.0, notes={"logs": [f"nginx: {EVIL}"]},
        )  # fmt: skip
    work = tmp_path_factory.mktemp("diagnosis")
    raw = work / "profile.txt"
    raw.write_text(RAW)
    profile = analyse_profile(raw, title=f"workers {EVIL}")
    assert profile.svg is not None
    document = build_document(analyse(s.collection(), profile=profile))
    path = work / "diagnosis.html"
    path.write_text(render_html(document), encoding="utf-8")
    return path


def test_diagnosis_report_renders_cleanly_in_chromium(open_report: Any, report_file: Path) -> None:
    opened = open_report(report_file)
    page, console, errors, requests = opened.page, opened.console, opened.errors, opened.requests

    assert console == []
    assert errors == []
    assert requests == [report_file.as_uri()]
    assert page.evaluate("() => window.pwned === undefined")
    assert page.locator("script").count() == 0
    assert page.locator("img").count() == 0

    verdict = page.inner_text("#verdict")
    assert "token-service workers" in verdict
    assert "every worker slot was taken" in verdict
    assert EVIL in page.inner_text("#signals")  # quoted from the logs, as text

    waterfall = page.locator("svg#waterfall").bounding_box()
    assert waterfall is not None and waterfall["width"] > 600
    assert page.locator("svg#waterfall rect").count() >= 3

    charts = page.locator("svg.chart")
    ids = sorted(charts.nth(i).get_attribute("id") for i in range(charts.count()))
    assert ids == sorted(
        ["chart-cpu", "chart-runq", "chart-rps", "chart-latency", "chart-queues",
         "chart-token", "chart-registry", "chart-redis", "chart-nginx"]
    )  # fmt: skip
    for chart_id in (
        "chart-cpu",
        "chart-runq",
        "chart-rps",
        "chart-latency",
        "chart-queues",
        "chart-token",
    ):
        box = page.locator(f"svg#{chart_id}").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, chart_id
        drawn = page.locator(f"svg#{chart_id} path.series, svg#{chart_id} path.band")
        assert drawn.count() > 0, chart_id

    graph = page.locator("#callgraph svg")
    assert graph.count() == 1
    box = graph.bounding_box()
    assert box is not None and box["height"] > 300
    assert page.locator("#callgraph svg g.node").count() >= 5
    assert "bcrypt.checkpw" not in page.inner_text("#callgraph")  # no source lines here
    assert "authenticate" in page.inner_text("#callgraph")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "diagnosis-report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    page.close()


def test_callgraph_of_the_fixture() -> None:
    g = build(parse_collapsed(RAW))
    assert [g.label(k) for k in g.hottest][-1] == "authenticate"

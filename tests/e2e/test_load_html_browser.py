"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright.

It must load from a file with no console errors or warnings, no page errors and no network
request of any kind; every chart must be drawn (an SVG with a real size, with lines in it);
text from the run must show as text. A screenshot lands in ``tests/artifacts/``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from keelhaul.load.checks import evaluate, parse_checks
from keelhaul.load.report_html import render_html
from keelhaul.load.report_json import ClosedModel, RunInfo, build_report
from keelhaul.load.stats import RunStats

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
T0 = 1_700_000_000
EVIL = "<script>window.pwned = 1</script><img src=x onerror=alert(1)>"

# stage: (median ms, spread, body bytes)
STAGES = {
    "token": (3.0, 0.4, 900),
    "manifest HEAD": (4.0, 0.3, 0),
    "manifest GET": (6.0, 0.4, 2_000),
    "blob HEAD": (3.0, 0.3, 0),
    "blob GET": (40.0, 0.6, 4_000_000),
    "upload start": (5.0, 0.3, 0),
    "upload PATCH": (60.0, 0.5, 8_000_000),
    "upload PUT": (20.0, 0.5, 0),
    "manifest PUT": (10.0, 0.4, 1_500),
}


def realistic_stats(seed: int = 4) -> RunStats:
    """A minute of a pull/push mix: a ramp, a slow patch around 0:40 with 503s on blob GET."""
    rnd = random.Random(seed)
    stats = RunStats(clock=lambda: T0)
    for sec in range(60):
        load = 1 + 0.5 * (sec > 20) + (0.8 if 35 < sec < 45 else 0)
        slow = 1.8 if 35 < sec < 45 else 1.0
        for name, (median, sigma, size) in STAGES.items():
            for _ in range(int(rnd.randint(8, 14) * load)):
                when = T0 + sec + rnd.random()
                ms = rnd.lognormvariate(0, sigma) * median * slow
                bad = name == "blob GET" and 38 < sec < 42 and rnd.random() < 0.1
                flaky = rnd.random() < 0.002
                error = f"HTTP 503 from registry: {EVIL}" if bad else "ConnectionDropped: reset"
                stats.record(name, ms, 0 if bad else size, bad or flaky, when, error)
        for _ in range(int(4 * load)):
            ms = rnd.lognormvariate(0, 0.4) * 400 * slow
            stats.record("image pull", ms, 12_000_000, False, T0 + sec + rnd.random())
        ms = rnd.lognormvariate(0, 0.4) * 900 * slow
        stats.record("image push", ms, 16_000_000, False, T0 + sec + rnd.random())
    return stats


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stats = realistic_stats()
    info = RunInfo(
        target=f"http://127.0.0.1:5000/{EVIL}",
        started_at=float(T0),
        duration_s=60.0,
        model=ClosedModel(users=50, spawn_rate=10),
        processes=4,
        mode="processes",
        scenario={"pull": 0.8, "push": 0.2},
        locust_version="2.47.0",
        labels={"note": EVIL},
    )
    checks = parse_checks(["image pull:p95<800ms", "fail_ratio<0.01", "token:rps>500"])
    document = build_report(stats, info, evaluate(checks, stats.summary(60.0)))
    path = tmp_path_factory.mktemp("report") / "load-report.html"
    path.write_text(render_html(document), encoding="utf-8")
    return path


def test_report_renders_cleanly_in_chromium(open_report: Any, report_file: Path) -> None:
    opened = open_report(report_file)
    page, console, errors, requests = opened.page, opened.console, opened.errors, opened.requests

    assert [m for m in console if m[0] in ("error", "warning")] == []
    assert errors == []
    assert requests == [report_file.as_uri()]  # nothing fetched: no script, font, image
    assert page.evaluate("() => window.pwned === undefined")
    assert page.locator("script").count() == 0
    assert page.locator("img").count() == 0
    body = page.inner_text("body")
    assert f"HTTP 503 from registry: {EVIL}" in body  # the error message, as text
    assert "FAIL" in body
    assert "PASS" in body

    charts = page.locator("svg.chart")
    ids = [charts.nth(i).get_attribute("id") for i in range(charts.count())]
    expected = ["chart-throughput", "chart-iterations", "chart-bytes", "chart-errors"]
    expected += [f"chart-latency-{s.lower().replace(' ', '-')}" for s in STAGES]
    expected += ["chart-latency-image-pull", "chart-latency-image-push"]
    expected += ["chart-latency-aggregated"]
    assert sorted(ids) == sorted(expected)
    for chart_id in expected:
        chart = page.locator(f"svg#{chart_id}")
        box = chart.bounding_box()
        assert box is not None, chart_id
        assert box["width"] > 200, chart_id
        assert box["height"] > 100, chart_id
        drawn = chart.locator("path.series, path.band")
        assert drawn.count() > 0, chart_id
        line = drawn.first.bounding_box()
        assert line is not None, chart_id
        assert line["width"] > 50, chart_id  # a line across the run, not a dot

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "load-report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    page.close()

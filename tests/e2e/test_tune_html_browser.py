"""The journey's HTML page in Debian's headless Chromium: no error, no request, bars drawn,
each step's diagnosis one click away, text from the run shown as text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keelhaul.tune.journey import Goal, Measurement, Step
from keelhaul.tune.report import write_reports
from keelhaul.tune.session import Journey

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
EVIL = "<img src=x onerror=alert(1)><script>window.pwned=1</script>"


def _m(flows: float, p95: float, failed: int = 0) -> Measurement:
    return Measurement(flows, flows * 7, p95 / 3, p95, 1000, failed, flows)


def test_journey_page_in_a_browser(tmp_path: Path, open_report: Callable[[Path], object]) -> None:
    steps = []
    runs = [
        ("baseline", _m(0.3, 315, 990), "baseline"),
        ("baseline again", _m(0.3, 157, 999), "baseline"),
        ("nginx worker_connections", _m(0.2, 6205), "kept"),
        ("credential cache on", _m(11.0, 953), "kept"),
    ]
    for i, (label, m, outcome) in enumerate(runs):
        d = tmp_path / f"{i:02d}-{label.replace(' ', '-')}"
        d.mkdir()
        (d / "diagnosis.html").write_text("<!DOCTYPE html><title>step</title><p>step</p>")
        steps.append(Step(i, label, {"tier": "proxy", "label": "proxy (nginx)",
                                     "evidence": [f"nginx said {EVIL}"]}, m, outcome,
                          change=None if i < 2 else "proxy_connections: 48 -> 4096",
                          reason="why", report_dir=str(d)))  # fmt: skip
    journey = Journey(
        goal=Goal(), remote=False, steps=steps, noise=0.1, threshold=0.2,
        final_settings={"proxy_connections": 4096}, stopped="no server-side bottleneck",
    )  # fmt: skip
    paths = write_reports(journey, tmp_path)
    opened = open_report(paths["html"])
    page = opened.page  # type: ignore[attr-defined]
    assert opened.errors == [] and opened.console == []  # type: ignore[attr-defined]
    assert [u for u in opened.requests if not u.startswith("file:")] == []  # type: ignore[attr-defined]
    assert page.evaluate("window.pwned") is None
    assert EVIL in page.inner_text("body")
    bars = page.locator("svg.chart rect")
    assert bars.count() == 8  # two charts, four measured steps
    assert page.locator("svg.chart").first.bounding_box()["width"] > 200
    links = page.locator('a[href$="diagnosis.html"]')
    assert links.count() == 4
    links.nth(3).click()
    page.wait_for_load_state()
    assert page.url.endswith("03-credential-cache-on/diagnosis.html")
    ARTIFACTS.mkdir(exist_ok=True)
    open_report(paths["html"]).page.screenshot(
        path=str(ARTIFACTS / "tune-journey.png"), full_page=True
    )  # type: ignore[attr-defined]

"""The JSON report against its schema, the HTML report's escaping and self-containment, and
the terminal summary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from keelhaul.load import histogram as hdr
from keelhaul.load.checks import evaluate, parse_checks
from keelhaul.load.report_html import render_html
from keelhaul.load.report_json import ClosedModel, OpenModel, RunInfo, build_report, dumps
from keelhaul.load.stats import RunStats
from keelhaul.load.summary import format_bytes, format_ms, render_summary
from keelhaul.report.charts import format_clock, nice_ticks

pytestmark = pytest.mark.unit

SCHEMA_PATH = Path(__file__).parents[2] / "docs" / "load-report.schema.json"
T0 = 1_700_000_000
EVIL = "<script>alert('pwned')</script>"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _stats(seconds: int = 20) -> RunStats:
    stats = RunStats(clock=lambda: T0)
    for sec in range(seconds):
        for i in range(30):
            when = T0 + sec + i / 30
            stats.record("token", 2 + i % 5, 600, False, when)
            stats.record("blob GET", 20 + i, 1_000_000, i == 7 and sec % 5 == 0, when,
                         f"HTTP 503 {EVIL} & \"quoted\"")  # fmt: skip
            stats.record("upload PATCH", 40 + i, 0, False, when)
        stats.record("image pull", 300, 3_000_000, False, T0 + sec)
        stats.record(f"custom {EVIL}", 5, 0, sec == 3, T0 + sec, "boom")
    return stats


def _info(**overrides: Any) -> RunInfo:
    fields: dict[str, Any] = {
        "target": f"http://127.0.0.1:5000/?q={EVIL}",
        "started_at": float(T0),
        "duration_s": 20.0,
        "model": ClosedModel(users=10, spawn_rate=5),
        "processes": 2,
        "mode": "processes",
        "scenario": {"pull": 4.0, f"push {EVIL}": 1.0},
        "locust_version": "2.47.0",
        "labels": {"commit": EVIL},
    }
    fields.update(overrides)
    return RunInfo(**fields)


def _report(stats: RunStats | None = None, **info: Any) -> dict[str, Any]:
    stats = stats if stats is not None else _stats()
    checks = parse_checks(["image pull:p95<800ms", "fail_ratio<0.001", "catalog:rps>1"])
    return build_report(stats, _info(**info), evaluate(checks, stats.summary(20.0)))


# --- JSON ----------------------------------------------------------------------------------


def test_json_report_validates(validator: jsonschema.Draft202012Validator) -> None:
    doc = _report()
    validator.validate(doc)
    assert doc["schema"] == "keelhaul.load/v1"
    assert doc["run"]["started_at"] == "2023-11-14T22:13:20.000Z"
    assert doc["run"]["ended_at"] == "2023-11-14T22:13:40.000Z"
    assert [c["passed"] for c in doc["checks"]] == [True, False, False]
    assert doc["passed"] is False
    assert doc["aggregated"]["count"] == 20 * 91
    stages = [row["stage"] for row in doc["stages"]]
    assert stages == ["token", "blob GET", "upload PATCH", f"custom {EVIL}", "image pull"]
    # the histograms are HdrHistogram's and hold every sample
    assert sum(hdr.decode(doc["histograms"]["Aggregated"]).values()) == 20 * 91
    # per second, per stage, with an Aggregated series
    points = doc["timeline"]["points"]
    assert {p["t"] for p in points} == set(range(T0, T0 + 20))
    assert sum(p["count"] for p in points if p["stage"] == "Aggregated") == 20 * 91


def test_json_report_of_an_open_model_run(validator: jsonschema.Draft202012Validator) -> None:
    stats = _stats()
    stats.scheduled(400)
    stats.late(25.0, when=T0 + 3)
    stats.dropped(T0 + 4, n=2)
    doc = _report(stats, model=OpenModel(rate=20.0, late_after_ms=10.0))
    validator.validate(doc)
    model = doc["run"]["model"]
    assert (model["kind"], model["scheduled"], model["late"], model["dropped"]) == (
        "open",
        400,
        1,
        2,
    )
    assert model["timeline"] == [
        {"t": T0 + 3, "late": 1, "dropped": 0},
        {"t": T0 + 4, "late": 0, "dropped": 2},
    ]


def test_json_report_of_an_empty_run(validator: jsonschema.Draft202012Validator) -> None:
    doc = build_report(RunStats(), _info(duration_s=0.0), include_histograms=False)
    validator.validate(doc)
    assert doc["stages"] == []
    assert doc["aggregated"]["p99_ms"] is None
    assert doc["timeline"] == {"step_s": 1, "first": None, "last": None, "points": []}
    assert doc["passed"] is True
    assert "histograms" not in doc
    assert "<!DOCTYPE html>" in render_html(doc)


def test_the_schema_rejects_what_it_should(validator: jsonschema.Draft202012Validator) -> None:
    doc = _report()
    for mutate in (
        lambda d: d.update(schema="keelhaul.load/v2"),
        lambda d: d["run"].pop("target"),
        lambda d: d["stages"][0].update(p95_ms=None),  # a stage row always has latencies
        lambda d: d["aggregated"].update(surprise=1),
        lambda d: d["checks"][0].update(metric="p42"),
        lambda d: d["run"].update(model={"kind": "open", "rate": 5}),
    ):
        broken = json.loads(json.dumps(doc))
        mutate(broken)
        assert not validator.is_valid(broken)


def test_dumps_is_strict_json() -> None:
    text = dumps(_report())
    assert text.endswith("}\n")
    assert json.loads(text)["schema"] == "keelhaul.load/v1"
    assert EVIL in text  # JSON is data: escaping is the renderer's job
    with pytest.raises(ValueError, match="Out of range float"):
        dumps({"x": float("nan")})


# --- HTML ----------------------------------------------------------------------------------


def test_html_escapes_everything_from_the_run() -> None:
    page = render_html(_report())
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    # the error message, the stage name, the target, the scenario and the labels are all text
    assert page.count("&lt;script&gt;") >= 5
    assert "&amp; &quot;quoted&quot;" in page


def test_html_is_self_contained() -> None:
    page = render_html(_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in page
    for pattern in (r"<script", r"<link", r"<img", r"<iframe", r"@import", r"url\(",
                    r"\bsrc=", r"\bhref=", r"@font-face"):  # fmt: skip
        assert not re.search(pattern, page, re.IGNORECASE), pattern
    # the only URLs are the SVG namespace and the run's own (escaped) target, as text
    urls = set(re.findall(r"https?://[^\s\"'<&]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://127.0.0.1:5000/?q="}


def test_html_has_every_chart() -> None:
    page = render_html(_report())
    ids = re.findall(r'<svg class="chart" id="([^"]+)"', page)
    assert ids[:2] == ["chart-throughput", "chart-iterations"]
    assert {"chart-bytes", "chart-errors", "chart-latency-token", "chart-latency-aggregated"} <= (
        set(ids)
    )
    assert "chart-latency-custom--script-alert--pwned----script-" in ids
    assert len(ids) == len(set(ids))


def test_long_runs_are_drawn_in_windows() -> None:
    stats = RunStats(clock=lambda: T0)
    for sec in range(0, 7200, 3):
        stats.record("blob GET", 10 + sec % 50, 100, sec % 600 == 0, T0 + sec, "x")
    doc = build_report(stats, _info(duration_s=7200.0))
    page = render_html(doc)
    assert "averaged over 12-s windows" in page
    path = re.search(r'id="chart-throughput".*?<path class="band" d="([^"]+)"', page)
    assert path is not None
    assert path.group(1).count("L") <= 2 * 600 + 2


# --- the terminal summary ------------------------------------------------------------------


def test_terminal_summary() -> None:
    stats = _stats()
    results = evaluate(parse_checks(["image pull:p95<800ms", "catalog:rps>1"]), stats.summary(20))
    text = render_summary(stats.summary(20.0), results, notes=["1 worker report lost"])
    lines = text.splitlines()
    assert lines[0].startswith("Stage") and "p99.9" in lines[0]
    table = [line for line in lines[2:] if line and not line.startswith("-")][:6]
    assert [line.split()[0] for line in table] == ["token", "blob", "upload", "custom", "image",
                                                   "Aggregated"]  # fmt: skip
    widths = {len(line) for line in lines[:9] if line and not line.startswith("Stage")}
    assert len(widths) <= 2  # fixed-width columns (the rule lines are as long as the header)
    assert "1 worker report lost" in text
    assert "Checks: 1 passed, 1 failed" in text
    assert "  PASS  image pull:p95<800ms" in text
    assert "  FAIL  catalog:rps>1         no requests recorded for stage 'catalog'" in text


def test_terminal_summary_of_an_open_model_run() -> None:
    stats = _stats(2)
    stats.scheduled(100)
    stats.late(12.0)
    stats.dropped(n=3)
    text = render_summary(stats.summary(2.0), iterations=stats.iterations())
    assert "Open model: 100 iterations scheduled, 1 started late (max lag 12.0 ms), 3 dropped" in (
        text
    )
    assert "Checks" not in text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0.0, "0.00"), (3.14159, "3.14"), (12.345, "12.3"), (9999.9, "9999.9"),
     (12345.6, "12346")],
)  # fmt: skip
def test_format_ms(value: float | None, text: str) -> None:
    assert format_ms(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0 B/s"), (999, "999 B/s"), (1500, "1.5 KB/s"), (2.5e6, "2.5 MB/s"), (3e9, "3.0 GB/s")],
)
def test_format_bytes(value: float, text: str) -> None:
    assert format_bytes(value) == text


def test_chart_helpers() -> None:
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(97) == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert nice_ticks(0.3)[-1] >= 0.3
    assert format_clock(59.6) == "1:00"
    assert format_clock(3725) == "1:02:05"

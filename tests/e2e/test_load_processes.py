"""``keelhaul load --processes 2``: a master and two worker processes, merged exactly; the
reports (JSON schema, HTML in headless Chromium); and the embedded default, which starts the
local stack itself and stops it again.

The merge is checked against what each worker recorded itself: every worker writes its own
final statistics (``--worker-stats``, a diagnostics option); their counts must add up to
the master's, and one histogram built from their snapshots must give the master's
percentiles, to the microsecond.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from keelhaul.load.stats import AGGREGATED, RunStats

if TYPE_CHECKING:
    from support.stacks import StackInfo

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
SCHEMA = json.loads((ROOT / "docs" / "load-report.schema.json").read_text(encoding="utf-8"))
SMALL = ("--images", "2", "--layers", "1", "--layer-size", "64k")
PERCENTILES = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "min_ms")


def run_load(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", "load", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def two_workers(
    stack: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], list[dict[str, Any]], Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("processes")
    out, html, workers = tmp / "report.json", tmp / "report.html", tmp / "workers"
    result = run_load(
        "--stack-dir", str(stack.dir), *SMALL, "--processes", "2", "--users", "4",
        "--mix", "pull=3,push=1,login=2", "--run-time", "3s", "--iterations", "600",
        "--json", str(out), "--html", str(html), "--worker-stats", str(workers),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    snapshots = [json.loads(p.read_text()) for p in sorted(workers.glob("worker-*.json"))]
    return document, snapshots, html, result


def test_the_report_is_valid_and_says_how_it_ran(two_workers: Any) -> None:
    document, snapshots, _, result = two_workers
    jsonschema.validate(document, SCHEMA)
    assert document["run"]["mode"] == "processes"
    assert document["run"]["processes"] == 2
    assert len(snapshots) == 2
    assert document["integrity"] == {"lost_deltas": 0, "duplicate_deltas": 0, "clamped": 0}
    assert document["aggregated"]["failures"] == 0, document["errors"]
    assert "started 2 worker processes" in result.stderr


def test_merged_counts_are_the_sums_of_the_workers(two_workers: Any) -> None:
    document, snapshots, _, _ = two_workers
    composite = document["composite_stages"]
    duration = document["run"]["duration_s"]
    workers = [
        {r.name: r for r in RunStats.from_snapshot(s, composite=composite).summary(duration)}
        for s in snapshots
    ]
    rows = {r["stage"]: r for r in [*document["stages"], document["aggregated"]]}
    assert {"image pull", "image push", "login", "blob GET", "upload PATCH"} <= set(rows)
    for name, row in rows.items():
        for field in ("count", "failures", "bytes"):
            assert row[field] == sum(getattr(w[name], field) for w in workers if name in w), (
                name,
                field,
            )
    for w in workers:  # both did a share of the work
        assert w[AGGREGATED].count > 0
        assert w["image pull"].count > 0


def test_merged_percentiles_are_those_of_all_samples(two_workers: Any) -> None:
    document, snapshots, _, _ = two_workers
    combined = RunStats(composite=document["composite_stages"])
    for snapshot in snapshots:
        combined.merge(snapshot)
    expected = {r.name: r for r in combined.summary(document["run"]["duration_s"])}
    for row in [*document["stages"], document["aggregated"]]:
        mine = expected[row["stage"]]
        for key in PERCENTILES:
            assert row[key] == pytest.approx(getattr(mine, key), abs=1e-6), (row["stage"], key)


def test_the_html_report_of_a_real_run_renders_cleanly(two_workers: Any, open_report: Any) -> None:
    _, _, html, _ = two_workers
    opened = open_report(html)
    page = opened.page
    assert [m for m in opened.console if m[0] in ("error", "warning")] == []
    assert opened.errors == []
    assert opened.requests == [html.as_uri()]
    body = page.inner_text("body")
    for stage in ("image pull", "image push", "login", "blob GET", "upload PATCH"):
        assert stage in body
    charts = page.locator("svg.chart")
    assert charts.count() >= 5
    assert page.locator("svg#chart-latency-image-pull path.series").count() > 0
    page.close()


def test_without_a_target_the_stack_is_started_and_stopped(tmp_path: Path) -> None:
    directory = tmp_path / "stack"
    result = run_load(
        "--stack-dir", str(directory), "--images", "1", "--layers", "1", "--layer-size", "4k",
        "--mix", "pull=1,login=1", "--users", "2", "--iterations", "20", "--run-time", "30s",
    )  # fmt: skip
    state = json.loads((directory / "stack.json").read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr
    assert f"starting the local stack in {directory}" in result.stderr
    assert f"stopped the local stack in {directory}" in result.stderr
    assert "(local stack)" in result.stderr
    assert state["status"] == "stopped"
    assert state["pids"] == {}
    assert "image pull" in result.stdout

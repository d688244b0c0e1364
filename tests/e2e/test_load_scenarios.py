"""``keelhaul load`` against the session's stack, as a user runs it: every scenario, the
open model, thresholds and exit codes, clear failures, and test data that cleans up.

Each run is a subprocess (Locust monkey-patches the process it is imported in), bounded by
``--run-time`` and ``--iterations``, on loopback. The stack is used through ``--stack-dir``:
the kit finds it running and reuses it (reader pulls, admin pushes and browses).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from keelhaul.client.httpx_transport import HttpxTransport
from keelhaul.client.registry import RegistryClient
from keelhaul.client.tokens import Credentials
from keelhaul.errors import RepositoryNotFound

if TYPE_CHECKING:
    from support.stacks import StackInfo

pytestmark = pytest.mark.e2e

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs" / "load-report.schema.json").read_text(encoding="utf-8")
)
SMALL = ("--images", "2", "--layers", "1", "--layer-size", "64k")

Load = Callable[..., subprocess.CompletedProcess[str]]


def run_load(
    *args: str, stdin: str | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """``keelhaul load ARGS`` as a user runs it (KEELHAUL_* scrubbed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", "load", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def load(stack: StackInfo) -> Load:
    """``load(*args)``: ``keelhaul load`` on the session stack (reused, not restarted)."""
    return lambda *args, **kw: run_load("--stack-dir", str(stack.dir), *SMALL, *args, **kw)


def report(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(document, SCHEMA)
    return document


def stages(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["stage"]: row for row in document["stages"]}


EXPECTED = {
    "pull": ("ping", "token", "manifest GET", "blob GET", "image pull"),
    "push": (
        "ping", "token", "blob HEAD", "upload start", "upload PATCH", "upload PUT",
        "manifest PUT", "image push",
    ),
    "login": ("ping", "token", "login"),
    "browse": ("ping", "token", "tags", "catalog", "browse"),
}  # fmt: skip


@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_each_scenario_runs_without_a_failure(
    scenario: str, load: Load, stack: StackInfo, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    extra = ("--verify",) if scenario == "pull" else ()
    result = load(
        "--mix", scenario, "--users", "3", "--run-time", "3s", "--iterations", "300",
        "--json", str(out), *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = report(out)
    rows = stages(doc)
    for stage in EXPECTED[scenario]:
        assert rows[stage]["count"] > 0, stage
    assert doc["aggregated"]["failures"] == 0, doc["errors"]
    assert all(row["failures"] == 0 for row in doc["stages"]), doc["errors"]
    assert doc["run"]["scenario"] == {scenario: 1.0}
    assert doc["run"]["mode"] == "local"
    # the whole-flow entry is not counted twice in Aggregated
    assert doc["aggregated"]["count"] == sum(
        r["count"] for r in doc["stages"] if r["stage"] not in doc["composite_stages"]
    )
    # every flow started with the challenge and its own login
    flows = rows[EXPECTED[scenario][-1]]["count"]
    assert rows["ping"]["count"] == flows
    assert rows["token"]["count"] >= flows
    if scenario == "pull":
        assert rows["blob GET"]["bytes"] >= 2 * 65536 * rows["image pull"]["count"] // 2
    if scenario == "push":
        # uploads count the bytes they send, and a run's pushes are gone afterwards
        assert rows["upload PATCH"]["bytes"] >= 65536 * flows
        assert doc["run"]["labels"]["push_cleanup"].endswith(", 0 tags left")
        assert_no_tags(stack, doc["run"]["labels"]["push_repository"])
    assert stack.password("admin") not in result.stdout + result.stderr


def assert_no_tags(stack: StackInfo, repository: str) -> None:
    creds = Credentials("admin", stack.password("admin"))
    with (
        RegistryClient(
            HttpxTransport(), stack.entry_host, credentials=creds, plain_http=True
        ) as client,
        contextlib.suppress(RepositoryNotFound),
    ):  # as good as empty
        assert client.tags(repository) == []


def test_locust_patches_the_process_before_ssl_is_imported(load: Load) -> None:
    """Locust's gevent patching must come before anything imports ssl (the ``keelhaul``
    command's start-up included), or gevent warns, and ssl may misbehave under load."""
    result = load("--mix", "login", "--users", "1", "--iterations", "3", "--run-time", "20s")
    assert result.returncode == 0, result.stderr
    assert "MonkeyPatchWarning" not in result.stderr


def test_only_missing_pulls_each_blob_once_per_client(load: Load, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = load(
        "--mix", "pull", "--only-missing", "--users", "2", "--iterations", "20",
        "--run-time", "20s", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = stages(report(out))
    assert rows["image pull"]["count"] == 20
    assert rows["manifest GET"]["count"] == 20
    # 2 clients x 2 images x (config + 1 layer): later pulls find everything at home
    assert rows["blob GET"]["count"] <= 8


def test_open_model_paces_iterations_and_counts_them(load: Load, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = load(
        "--mix", "login", "--rate", "40/s", "--iterations", "60", "--run-time", "20s",
        "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = report(out)
    model = doc["run"]["model"]
    assert model["kind"] == "open"
    assert model["rate"] == 40.0
    assert model["scheduled"] == 60
    assert stages(doc)["login"]["count"] + model["dropped"] == 60
    assert 1.2 < doc["run"]["duration_s"] < 5  # 60 at 40/s: 1.5 s, not as fast as possible
    assert "Open model: 60 iterations scheduled" in result.stdout


def test_checks_pass_and_fail_with_the_right_exit_code(load: Load, tmp_path: Path) -> None:
    out = tmp_path / "pass.json"
    passing = load(
        "--mix", "login", "--users", "2", "--iterations", "30", "--run-time", "20s",
        "--json", str(out), "--check", "fail_ratio<0.01", "--check", "login:count==30",
        "--check", "token:rps>1",
    )  # fmt: skip
    assert passing.returncode == 0, passing.stderr
    assert "Checks: 3 passed, 0 failed" in passing.stdout
    assert report(out)["passed"] is True

    out = tmp_path / "fail.json"
    html = tmp_path / "fail.html"
    failing = load(
        "--mix", "login", "--users", "2", "--iterations", "30", "--run-time", "20s",
        "--json", str(out), "--html", str(html),
        "--check", "token:p50<1us", "--check", "fail_ratio<0.01", "--check", "catalog:count>0",
    )  # fmt: skip
    assert failing.returncode == 6, failing.stderr
    assert "2 checks failed" in failing.stderr
    assert "token:p50<1us" in failing.stderr
    assert "catalog:count>0: no requests recorded for stage 'catalog'" in failing.stderr
    assert "fail_ratio<0.01" not in failing.stderr  # it passed
    doc = report(out)  # the reports are written before the exit code is decided
    assert doc["passed"] is False
    assert [c["passed"] for c in doc["checks"]] == [False, True, False]
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "Traceback" not in failing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--check", "p95<<3"), "unknown metric"),
        (("--mix", "pul=3"), "--mix: unknown scenario 'pul'"),
        (("--rate", "fast"), "--rate: 'fast' is not a rate"),
        (("--processes", "2", "--master"), "--master and --processes exclude each other"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(
    load: Load, args: tuple[str, ...], message: str
) -> None:
    result = load(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "test data" not in result.stderr  # nothing was seeded


def test_wrong_credentials_and_unreachable_targets_fail_fast(stack: StackInfo) -> None:
    wrong = run_load(
        "--target", stack.entry, "-u", "admin", "--password-stdin", *SMALL, "--run-time", "2s",
        stdin="not-the-password\n",
    )  # fmt: skip
    assert wrong.returncode == 5, wrong.stderr
    assert "rejected the credentials of admin" in wrong.stderr
    assert "not-the-password" not in wrong.stderr + wrong.stdout
    gone = run_load("--target", "http://127.0.0.1:9", *SMALL, "--run-time", "2s")
    assert gone.returncode == 5, gone.stderr
    assert "cannot reach 127.0.0.1:9" in gone.stderr
    for result in (wrong, gone):
        assert "Traceback" not in result.stderr
        assert "running:" not in result.stderr  # no load was generated


def test_target_with_credentials_and_idempotent_seeding(stack: StackInfo, tmp_path: Path) -> None:
    args = (
        "--target", stack.entry, "-u", "admin", "--password-stdin", "--repo", "admin/seeded",
        "--images", "2", "--layers", "1", "--layer-size", "32k", "--mix", "login",
        "--iterations", "10", "--run-time", "20s",
    )  # fmt: skip
    first = run_load(*args, stdin=stack.password("admin") + "\n")
    assert first.returncode == 0, first.stderr
    again = run_load(*args, stdin=stack.password("admin") + "\n")
    assert again.returncode == 0, again.stderr
    assert "2 images in admin/seeded (0 present, 2 pushed)" in first.stderr
    assert "2 images in admin/seeded (2 present, 0 pushed)" in again.stderr
    assert "(local stack)" not in again.stderr

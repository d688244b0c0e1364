"""``--check`` thresholds: the grammar, the units, clear errors, and evaluation."""

from __future__ import annotations

import pytest

from keelhaul.errors import CheckSpecError, KeelhaulError
from keelhaul.load.checks import Check, evaluate, parse_check, parse_checks
from keelhaul.load.stats import RunStats

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("spec", "stage", "metric", "op", "threshold"),
    [
        ("image pull:p95<800ms", "image pull", "p95", "<", 800.0),
        ("fail_ratio<0.01", None, "fail_ratio", "<", 0.01),
        ("token:rps>500", "token", "rps", ">", 500.0),
        ("token:rps>500/s", "token", "rps", ">", 500.0),
        ("  blob GET : p99 <= 2s ", "blob GET", "p99", "<=", 2000.0),
        ("p50<250us", None, "p50", "<", 0.25),
        ("p50<250µs", None, "p50", "<", 0.25),
        ("p90<12.5", None, "p90", "<", 12.5),
        ("max<1e3ms", None, "max", "<", 1000.0),
        ("mean>=.5ms", None, "mean", ">=", 0.5),
        ("p999<3s", None, "p999", "<", 3000.0),
        ("upload PATCH:p99.9<3s", "upload PATCH", "p999", "<", 3000.0),
        ("failures==0", None, "failures", "==", 0.0),
        ("catalog:count>=10", "catalog", "count", ">=", 10.0),
        ("fail_ratio<1%", None, "fail_ratio", "<", 0.01),
        ("blob GET:bytes_per_s>50MB/s", "blob GET", "bytes_per_s", ">", 50e6),
        ("bytes_per_s>=1.5GiB", None, "bytes_per_s", ">=", 1.5 * 2**30),
        ("bytes_per_s>100KiB/s", None, "bytes_per_s", ">", 102400.0),
        ("bytes_per_s>100 KB", None, "bytes_per_s", ">", 100000.0),
        ("bytes_per_s>100B/s", None, "bytes_per_s", ">", 100.0),
        ("bytes_per_s>100/s", None, "bytes_per_s", ">", 100.0),
        ("registry:5000/x:p95<1", "registry:5000/x", "p95", "<", 1.0),
    ],
)
def test_valid_checks(spec: str, stage: str | None, metric: str, op: str, threshold: float) -> None:
    check = parse_check(spec)
    assert (check.stage, check.metric, check.op) == (stage, metric, op)
    assert check.threshold == pytest.approx(threshold)
    assert check.spec == spec.strip()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("token:p42<5ms", "unknown metric 'p42' in 'token:p42<5ms'; use one of p50, p90"),
        ("", "cannot parse check"),
        ("p95", "cannot parse check"),
        ("p95 800ms", "cannot parse check"),
        ("p95=800", "cannot parse check"),
        ("p95<", "'(nothing)' is not a number"),
        ("p95<fast", "'fast' is not a number"),
        ("p95<-5ms", "'-5ms' is not a number"),
        ("p95<800mss", "unknown unit 'mss' for p95"),
        ("p95<800MB", "unknown unit 'MB' for p95"),
        ("rps>500rps", "unknown unit 'rps' for rps"),
        ("bytes_per_s>5Mb/s", "unknown unit 'Mb/s' for bytes_per_s"),
        ("fail_ratio<1ms", "unknown unit 'ms' for fail_ratio"),
        ("failures<3ms", "failures takes a plain number"),
        (":p95<800ms", "empty stage name"),
        ("image pull:<800ms", "unknown metric '(nothing)'"),
        ("image pull p95<800ms", "unknown metric 'image pull p95'"),
        ("a<b<5", "unknown metric 'a<b'"),
    ],
)
def test_invalid_checks_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(CheckSpecError) as raised:
        parse_check(spec)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, KeelhaulError)
    assert raised.value.exit_code == 2


def _stats() -> RunStats:
    stats = RunStats(clock=lambda: 1_700_000_000)
    for ms in range(1, 101):  # 1..100 ms
        stats.record("image pull", float(ms), 1_000_000, False)
    for i in range(200):
        stats.record("token", 2.0, 500, i < 2, error="401")
    return stats


def test_evaluate_passes_and_fails_with_reasons() -> None:
    summary = _stats().summary(10.0)  # 100 pulls of 1..100 ms, 200 tokens (2 failed), 10 s
    expected = {
        "image pull:p95<800ms": True,
        "image pull:p50<=51ms": True,  # 50.015: the top of 50 ms's bucket
        "image pull:max==100": True,  # the exact largest sample
        "fail_ratio<0.01": False,  # Aggregated leaves out image pull: 2/200 is not < 0.01
        "token:rps>500": False,  # 20/s
        "token:failures==2": True,
        "count>=200": True,
        "image pull:bytes_per_s>=10MB/s": True,  # 100 MB in 10 s
        "catalog:p99<5ms": False,  # no requests at all
        "token:fail_ratio<0.5%": False,  # 1 %
    }
    results = evaluate(parse_checks(list(expected)), summary)
    assert [r.spec for r in results] == list(expected)
    assert {r.spec: r.passed for r in results} == expected
    by_spec = {r.spec: r for r in results}
    assert by_spec["token:rps>500"].actual == 20.0
    assert by_spec["token:rps>500"].reason == "rps of token is 20.00/s, violates > 500.00/s"
    p95 = by_spec["image pull:p95<800ms"]
    assert p95.actual == 95.039  # HdrHistogram: within 0.1 % of 95 ms
    assert p95.reason == "p95 of image pull is 95.039 ms, within < 800 ms"
    assert by_spec["fail_ratio<0.01"].reason == (
        "fail_ratio of Aggregated is 0.01, violates < 0.01"
    )
    assert by_spec["catalog:p99<5ms"].actual is None
    assert by_spec["catalog:p99<5ms"].reason == "no requests recorded for stage 'catalog'"


def test_fail_ratio_boundary_is_strict() -> None:
    summary = _stats().summary(10.0)
    [strict, loose] = evaluate(parse_checks(["fail_ratio<0.01", "fail_ratio<=0.01"]), summary)
    assert strict.actual == 0.01
    assert (strict.passed, loose.passed) == (False, True)


def test_a_run_without_requests_fails_every_check() -> None:
    summary = RunStats().summary(10.0)
    results = evaluate(parse_checks(["fail_ratio<0.01", "count>=0"]), summary)
    assert [r.passed for r in results] == [False, False]
    assert results[0].reason == "no requests recorded for the run"


def test_check_row_names_the_aggregated_row() -> None:
    assert parse_check("p95<1").row == "Aggregated"
    assert parse_check("token:p95<1").row == "token"
    assert isinstance(parse_check("p95<1"), Check)

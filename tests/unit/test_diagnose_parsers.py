"""The collectors' pure halves: every text format the diagnosis reads, parsed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keelhaul.diagnose.collectors.auth_metrics import auth_reading
from keelhaul.diagnose.collectors.listen_queue import parse_listen_queues
from keelhaul.diagnose.collectors.log_events import classify
from keelhaul.diagnose.collectors.nginx_log import AccessLogAggregate, upstream_seconds
from keelhaul.diagnose.collectors.procs import cgroup_cpu_dir, parse_cgroup_cpu, parse_schedstat
from keelhaul.diagnose.collectors.redis_info import info_reading
from keelhaul.diagnose.collectors.registry_metrics import registry_reading
from keelhaul.diagnose.collectors.stub_status import parse_stub_status
from keelhaul.diagnose.model import Collection, Hist, HistBuilder, Reading, Tick
from keelhaul.diagnose.prom import parse_text
from keelhaul.diagnose.stages import registry_stage, stage_of

pytestmark = pytest.mark.unit

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000080:0000000E 00:00000000 00000000     0        0 1 1
   1: 0100007F:1F90 00000000:0000 0A 00000080:00000002 00:00000000 00000000     0        0 2 1
   2: 0100007F:0050 00000000:0000 0A 00001000:00000000 00:00000000 00000000     0        0 3 1
   3: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4 1
"""


def test_listen_queue_sums_listening_sockets_of_a_port() -> None:
    queues = parse_listen_queues(PROC_NET_TCP)
    assert queues[8080] == 16  # two SO_REUSEPORT listeners: 14 + 2 waiting
    assert queues[80] == 0
    assert 54321 not in queues  # established connections are not listeners


STUB = (
    "Active connections: 17 \nserver accepts handled requests\n 5310 2519 5610 \n"
    "Reading: 0 Writing: 9 Waiting: 8 \n"
)


def test_stub_status() -> None:
    r = parse_stub_status(STUB)
    assert r.gauges == {"active": 17, "reading": 0, "writing": 9, "waiting": 8}
    assert r.counters["dropped"] == 5310 - 2519
    assert parse_stub_status("<html>nope</html>").error


def test_schedstat() -> None:
    assert parse_schedstat("375380255 248906140 1138\n") == pytest.approx(0.24890614)
    assert parse_schedstat("") == 0.0


def test_cgroup_v1_and_v2() -> None:
    root = Path("/sys/fs/cgroup")
    v1 = "4:memory:/x\n1:cpu,cpuacct:/keelhaul-test\n0::/\n"
    assert cgroup_cpu_dir(v1, root) == (root / "cpu,cpuacct" / "keelhaul-test", 1)
    assert cgroup_cpu_dir("0::/system.slice/x.service\n", Path("/nonexistent"))[1] == 2  # type: ignore[index]
    one = parse_cgroup_cpu(
        1,
        {
            "cpu.stat": "nr_periods 116\nnr_throttled 106\nthrottled_time 12493659951\n",
            "cpu.cfs_quota_us": "5000\n",
            "cpu.cfs_period_us": "100000\n",
        },
    )
    assert (one.limit_cores, one.periods, one.throttled_periods) == (0.05, 116, 106)
    assert one.throttled_s == pytest.approx(12.49, abs=0.01)
    two = parse_cgroup_cpu(
        2,
        {
            "cpu.stat": "usage_usec 9\nnr_periods 10\nnr_throttled 4\nthrottled_usec 2500000\n",
            "cpu.max": "max 100000\n",
        },
    )
    assert (two.limit_cores, two.throttled_periods, two.throttled_s) == (None, 4, 2.5)
    assert parse_cgroup_cpu(2, {"cpu.stat": "", "cpu.max": "20000 100000"}).limit_cores == 0.2


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0.004", 0.004),
        ("0.001, 0.003", 0.004),
        ("0.002 : 0.001", 0.003),
        ("-", None),
        (None, None),
        (0.5, 0.5),
    ],
)
def test_upstream_seconds(value: object, seconds: float | None) -> None:
    got = upstream_seconds(value)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


@pytest.mark.parametrize(
    ("method", "uri", "stage"),
    [
        ("GET", "/token?service=x&scope=repository:a/b:pull", "token"),
        ("POST", "/token", "token"),
        ("GET", "/v2/", "ping"),
        ("GET", "/v2/team/app/manifests/1", "manifest GET"),
        ("HEAD", "/v2/team/app/manifests/sha256:ab", "manifest HEAD"),
        ("PUT", "/v2/a/b/c/manifests/latest", "manifest PUT"),
        ("GET", "/v2/a/blobs/sha256:00", "blob GET"),
        ("HEAD", "/v2/a/blobs/sha256:00", "blob HEAD"),
        ("POST", "/v2/a/blobs/uploads/", "upload start"),
        ("PATCH", "/v2/a/blobs/uploads/1234-uuid", "upload PATCH"),
        ("PUT", "/v2/a/blobs/uploads/1234-uuid?digest=sha256:00", "upload PUT"),
        ("GET", "/v2/a/b/tags/list?n=10", "tags"),
        ("GET", "/v2/_catalog", "catalog"),
        ("GET", "/healthz", "other"),
    ],
)
def test_stage_names_match_the_load_kit(method: str, uri: str, stage: str) -> None:
    assert stage_of(method, uri) == stage


def test_registry_handlers_map_to_the_same_names() -> None:
    assert registry_stage("manifest", "get") == "manifest GET"
    assert registry_stage("blob_upload_chunk", "patch") == "upload PATCH"
    assert registry_stage("weird", "get") == "weird GET"


def _line(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "method": "GET", "uri": "/token", "status": 200, "request_time": 0.010,
        "upstream_connect_time": "0.000", "upstream_header_time": "0.008",
        "upstream_response_time": "0.009", "body_bytes_sent": 900,
    }  # fmt: skip
    base.update(kw)
    return base


def test_access_log_aggregate() -> None:
    agg = AccessLogAggregate()
    agg.add(_line())
    agg.add(_line(status=502, request_time=0.5, upstream_response_time="0.001, 0.4"))
    agg.add(_line(status=499, upstream_response_time="-", upstream_header_time="-"))
    agg.add_lines([b"not json", b"[1, 2]"])
    r = agg.reading()
    c = r.counters
    assert c["n.token"] == 3 and c["up.token"] == 2
    assert c["err.token"] == 2 and c["s502.token"] == 1 and c["s499.token"] == 1
    assert c["ur.token"] == pytest.approx(0.41)
    assert c["unparsed"] == 2
    assert r.hists["rt.token"].count == 3
    assert r.hists["ov.token"].mean() == pytest.approx((0.001 + 0.099) / 2)


def test_log_events_classify() -> None:
    assert classify("nginx", "[alert] 1#1: 16 worker_connections are not enough") == [
        "conn_exhausted"
    ]
    assert classify("auth", "[CRITICAL] WORKER TIMEOUT (pid:42)") == ["worker_timeout"]
    assert classify("registry", 'level=error msg="redis: i/o timeout"') == ["error", "redis_error"]
    assert classify("nginx", "all good") == []


def test_redis_info() -> None:
    info = {
        "connected_clients": 7, "blocked_clients": 1, "used_memory": 2 * 2**20,
        "instantaneous_ops_per_sec": 250, "total_commands_processed": 1000,
        "used_cpu_sys_main_thread": 1.5, "used_cpu_user_main_thread": 2.0,
        "cmdstat_eval": {"calls": 10, "usec": 400_000, "usec_per_call": 40_000.0},
        "cmdstat_hmget": {"calls": 100, "usec": 300},
    }  # fmt: skip
    gauges, counters = info_reading(info)
    assert gauges["clients"] == 7 and gauges["memory_mb"] == 2
    assert counters["cpu"] == 3.5
    assert counters["busy_usec"] == 400_300
    assert counters["cmd.eval.calls"] == 10


REGISTRY_TEXT = """\
# TYPE registry_http_request_duration_seconds histogram
registry_http_request_duration_seconds_bucket{handler="manifest",method="get",le="0.005"} 8
registry_http_request_duration_seconds_bucket{handler="manifest",method="get",le="0.1"} 10
registry_http_request_duration_seconds_bucket{handler="manifest",method="get",le="+Inf"} 10
registry_http_request_duration_seconds_sum{handler="manifest",method="get"} 0.2
registry_http_request_duration_seconds_count{handler="manifest",method="get"} 10
# TYPE registry_http_in_flight_requests gauge
registry_http_in_flight_requests{handler="manifest"} 3
registry_http_in_flight_requests{handler="blob"} 1
# TYPE registry_http_requests_total counter
registry_http_requests_total{code="200",handler="manifest",method="get"} 9
registry_http_requests_total{code="503",handler="manifest",method="get"} 1
# TYPE registry_storage_action_seconds histogram
registry_storage_action_seconds_bucket{action="GetContent",driver="filesystem",le="0.005"} 20
registry_storage_action_seconds_bucket{action="GetContent",driver="filesystem",le="+Inf"} 20
registry_storage_action_seconds_sum{action="GetContent",driver="filesystem"} 0.02
registry_storage_action_seconds_count{action="GetContent",driver="filesystem"} 20
# TYPE go_goroutines gauge
go_goroutines 42
# TYPE registry_storage_cache_total counter
registry_storage_cache_total{type="Hit"} 9
"""


def test_registry_metrics() -> None:
    r = registry_reading(parse_text(REGISTRY_TEXT))
    h = r.hists["req.manifest GET"]
    assert h.count == 10 and h.mean() == pytest.approx(0.02)
    assert r.gauges == {"inflight": 4, "goroutines": 42}
    assert r.counters["s5xx"] == 1 and r.counters["requests"] == 10
    assert r.counters["cache.hit"] == 9
    assert r.hists["storage"].count == 20


AUTH_TEXT = """\
# TYPE keelhaul_token_inflight_requests gauge
keelhaul_token_inflight_requests{pid="10"} 1
keelhaul_token_inflight_requests{pid="11"} 0
# TYPE keelhaul_token_worker_capacity gauge
keelhaul_token_worker_capacity{pid="10"} 1
keelhaul_token_worker_capacity{pid="11"} 1
# TYPE keelhaul_token_requests_total counter
keelhaul_token_requests_total{grant="basic",outcome="issued"} 5
keelhaul_token_requests_total{grant="password",outcome="issued"} 2
keelhaul_token_requests_total{grant="basic",outcome="error"} 1
# TYPE keelhaul_token_stage_seconds histogram
keelhaul_token_stage_seconds_bucket{cache="miss",le="0.5",stage="authn"} 2
keelhaul_token_stage_seconds_bucket{cache="miss",le="+Inf",stage="authn"} 3
keelhaul_token_stage_seconds_sum{cache="miss",stage="authn"} 1.2
keelhaul_token_stage_seconds_count{cache="miss",stage="authn"} 3
keelhaul_token_stage_seconds_bucket{cache="local",le="0.5",stage="authn"} 5
keelhaul_token_stage_seconds_bucket{cache="local",le="+Inf",stage="authn"} 5
keelhaul_token_stage_seconds_sum{cache="local",stage="authn"} 0.001
keelhaul_token_stage_seconds_count{cache="local",stage="authn"} 5
"""


def test_auth_metrics_per_worker() -> None:
    r = auth_reading(parse_text(AUTH_TEXT))
    assert r.gauges["inflight"] == 1 and r.gauges["capacity"] == 2 and r.gauges["workers"] == 2
    assert r.gauges["busy_workers"] == 1
    assert r.counters["requests"] == 8 and r.counters["requests.issued"] == 7
    assert r.hists["stage.authn"].count == 8
    assert r.hists["stage.authn.miss"].mean() == pytest.approx(0.4)


def test_hist_quantile_and_difference() -> None:
    b = HistBuilder((0.01, 0.1, 1.0))
    for v in (0.005, 0.005, 0.05, 0.5):
        b.observe(v)
    h = b.freeze()
    assert h.counts == (2, 3, 4, 4)
    assert h.quantile(0.5) == pytest.approx(0.01)
    assert h.quantile(1.0) == pytest.approx(1.0)
    assert Hist.empty((0.1,)).quantile(0.5) is None
    later = b
    later.observe(2.0)  # lands in +Inf: the quantile says "at least the last bound"
    assert later.freeze().minus(h).counts == (0, 0, 0, 1)
    assert later.freeze().minus(h).quantile(0.99) == 1.0


@given(
    st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=50), st.integers(0, 50)
)
def test_hist_minus_undoes_plus(values: list[float], split: int) -> None:
    bounds = (0.001, 0.01, 0.1, 1.0, 10.0)
    a, b = HistBuilder(bounds), HistBuilder(bounds)
    for v in values[:split]:
        a.observe(v)
    for v in values[split:]:
        b.observe(v)
    total = a.freeze().plus(b.freeze())
    back = total.minus(a.freeze())
    assert back.counts == b.freeze().counts
    assert math.isclose(back.sum, b.freeze().sum, abs_tol=1e-9)


def test_collection_round_trip() -> None:
    h = HistBuilder((0.1,))
    h.observe(0.05)
    tick = Tick(
        1.0,
        {
            "a": Reading({"g": 1}, {"c": 2}, {"h": h.freeze()}, ("note",)),
            "b": Reading(error="down"),
        },
    )
    again = Collection.from_json(Collection((tick,), {"cores": 2}).to_json())
    assert again.ticks[0].readings == tick.readings
    assert again.meta == {"cores": 2}

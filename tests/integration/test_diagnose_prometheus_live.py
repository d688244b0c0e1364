"""The Prometheus source against a real ``prometheus`` (Debian's) that the test starts.

It scrapes a real redis-server through Debian's ``prometheus-redis-exporter`` and
``prometheus-process-exporter`` every second: the source must find the resolution, read
Redis' commandstats and CPU, name the tiers it never saw, and refuse what it cannot do
(an unreachable or non-Prometheus URL, a mapping that matches nothing, a window shorter
than two scrapes) with one line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
import yaml

from keelhaul.diagnose.analysis import analyse
from keelhaul.diagnose.promapi import PromApi
from keelhaul.diagnose.promsource import collect, resolution
from keelhaul.diagnose.tiermap import LOCAL, TierMap, TierSelectors
from keelhaul.errors import DiagnoseError
from keelhaul.netutil import free_port, wait_for_port
from support.promkit import Monitoring, spawn, start_prometheus

pytestmark = pytest.mark.integration

CALLS = 400


@dataclass(frozen=True)
class Watched:
    mon: Monitoring
    redis_url: str

    @property
    def url(self) -> str:
        return self.mon.url


@pytest.fixture(scope="module")
def monitored_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    """redis-server, its two exporters and a Prometheus, once for the module."""
    ports = {name: free_port() for name in ("prometheus", "redis", "process", "server")}
    directory = tmp_path_factory.mktemp("prom")
    mon = Monitoring(f"http://127.0.0.1:{ports['prometheus']}", directory)
    server = ports["server"]
    groups = {
        "process_names": [{"name": "redis", "cmdline": [rf"redis-server 127\.0\.0\.1:{server}\b"]}]
    }
    (mon.directory / "process.yml").write_text(yaml.safe_dump(groups))
    log = mon.directory / "exporters.log"
    redis_url = f"redis://127.0.0.1:{server}/0"
    try:
        mon.procs.append(
            spawn(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(server),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                log,
            )
        )
        assert wait_for_port("127.0.0.1", server, timeout=10)
        mon.procs.append(
            spawn(
                [
                    "prometheus-redis-exporter",
                    "-redis.addr",
                    redis_url,
                    "-web.listen-address",
                    f"127.0.0.1:{ports['redis']}",
                ],
                log,
            )
        )
        mon.procs.append(
            spawn(
                [
                    "prometheus-process-exporter",
                    "-config.path",
                    str(mon.directory / "process.yml"),
                    "-web.listen-address",
                    f"127.0.0.1:{ports['process']}",
                    "-threads=false",
                    "-gather-smaps=false",
                ],
                log,
            )
        )
        for port in (ports["redis"], ports["process"]):
            assert wait_for_port("127.0.0.1", port, timeout=20)
        jobs = {"redis": f"127.0.0.1:{ports['redis']}", "process": f"127.0.0.1:{ports['process']}"}
        start_prometheus(mon, jobs, "1s", ports["prometheus"])
        mon.wait_for_targets({"redis", "process"})
        yield Watched(mon, redis_url)
    finally:
        mon.stop()


def test_redis_through_prometheus(monitored_redis: Watched) -> None:
    client = redis.Redis.from_url(monitored_redis.redis_url)
    client.set("warm", "v")  # the exporter shows cmd="set" from its first call on
    time.sleep(2.5)
    start = time.time()
    try:
        for i in range(CALLS):
            client.set(f"k{i % 10}", "v")
            if i % 100 == 0:
                time.sleep(0.5)
    finally:
        client.close()
    time.sleep(3.0)  # the calls' last scrape, and a steady second after them
    end = time.time()
    with PromApi(monitored_redis.url) as api:
        assert resolution(api, LOCAL, start, end) == pytest.approx(1.0, abs=0.05)
        collection = collect(api, LOCAL, start - 1, end)
    source = collection.meta["source"]
    assert source["kind"] == "prometheus" and source["unseen"] == ["auth", "nginx", "registry"]
    calls = [t.counter("redis", "cmd.set.calls") for t in collection.ticks]
    present = [c for c in calls if c is not None]
    assert present[-1] - present[0] >= CALLS * 0.9  # the window holds (nearly) every SET
    cpu = [t.counter("procs", "cpu.redis") for t in collection.ticks]
    assert all(c is not None for c in cpu)
    assert collection.ticks[-1].gauge("procs", "procs.redis") == 1.0
    report = analyse(collection)
    assert report.signals.redis is not None
    assert report.signals.redis.top_commands[0][0] == "set"
    assert any("no data for auth, nginx, registry" in c for c in report.verdict.caveats)


def test_a_mapping_that_matches_nothing_is_one_line(monitored_redis: Watched) -> None:
    nothing = TierMap(tiers={"redis": TierSelectors(cpu='groupname="nope"', metrics='job="nope"')})
    end = time.time()
    with PromApi(monitored_redis.url) as api, pytest.raises(DiagnoseError) as caught:
        collect(api, nothing, end - 10, end, resolution_s=1.0)
    assert "returned no series for any tier" in str(caught.value)
    assert "--tiers" in str(caught.value)


def test_a_window_shorter_than_two_scrapes_is_refused(monitored_redis: Watched) -> None:
    end = time.time()
    with PromApi(monitored_redis.url) as api, pytest.raises(DiagnoseError) as caught:
        collect(api, LOCAL, end - 1.5, end)
    assert "shorter than two scrapes" in str(caught.value)


def test_an_unreachable_prometheus_is_one_line() -> None:
    port = free_port()
    with PromApi(f"http://127.0.0.1:{port}") as api, pytest.raises(DiagnoseError) as caught:
        collect(api, LOCAL, time.time() - 10, time.time())
    assert str(caught.value) == (
        f"cannot reach Prometheus at http://127.0.0.1:{port}: ConnectError"
    )


def test_a_server_that_is_not_prometheus_is_one_line(monitored_redis: Watched) -> None:
    targets = httpx.get(f"{monitored_redis.url}/api/v1/targets", trust_env=False).json()
    exporter = next(
        t["scrapeUrl"] for t in targets["data"]["activeTargets"] if t["labels"]["job"] == "redis"
    )
    base = exporter.rsplit("/metrics", 1)[0]
    with PromApi(base) as api, pytest.raises(DiagnoseError) as caught:
        api.query("up", time.time())
    assert "does not answer like Prometheus" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_query_prometheus_rejects_is_one_line(monitored_redis: Watched) -> None:
    with PromApi(monitored_redis.url) as api, pytest.raises(DiagnoseError) as caught:
        api.query("sum(", time.time())
    assert str(caught.value).startswith(f"Prometheus at {monitored_redis.url} refused")
    assert "\n" not in str(caught.value)

"""The collectors against the real things: redis-server, kernel accept queues, processes,
files being appended and rotated, and the sampler's aligned ticks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from keelhaul.diagnose.collectors.listen_queue import ListenQueueCollector
from keelhaul.diagnose.collectors.log_events import LogEventsCollector
from keelhaul.diagnose.collectors.procs import ProcessCollector
from keelhaul.diagnose.collectors.redis_info import RedisCollector
from keelhaul.diagnose.collectors.tail import LogTail
from keelhaul.diagnose.sampler import Sampler

pytestmark = pytest.mark.integration

BUSY_LUA = (
    "local t=redis.call('TIME') local s=t[1]*1000000+t[2] "
    "repeat local n=redis.call('TIME') until (n[1]*1000000+n[2])-s >= tonumber(ARGV[1]) return 1"
)


def test_redis_collector_sees_a_slow_script(redis_server) -> None:  # type: ignore[no-untyped-def]
    collector = RedisCollector(redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    try:
        first = collector.collect()
        assert first.error is None and first.gauges["ping_ms"] < 1000
        client.eval(BUSY_LUA, 0, 30_000)  # 30 ms: above the slow log's default 10 ms
        second = collector.collect()
    finally:
        client.close()
        collector.close()
    assert second.counters["cmd.eval.calls"] == 1
    assert second.counters["busy_usec"] - first.counters["busy_usec"] >= 30_000
    assert second.counters["slowlog"] == 1
    assert any("EVAL" in n and "ms" in n for n in second.notes)


def test_redis_collector_reports_a_dead_server(redis_server) -> None:  # type: ignore[no-untyped-def]
    redis_server.stop()
    collector = RedisCollector(redis_server.url, timeout=0.3)
    try:
        assert collector.collect().error == "redis: ConnectionError"
    finally:
        collector.close()


def test_listen_queue_counts_connections_nobody_accepts() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    clients: list[socket.socket] = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        collector = ListenQueueCollector({"auth": port})
        assert collector.collect().gauges["queue.auth"] == 0
        for _ in range(5):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        time.sleep(0.05)
        reading = collector.collect()
        assert reading.gauges["queue.auth"] == 5
    finally:
        for c in clients:
            c.close()
        server.close()


@contextlib.contextmanager
def busy_child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<20: pass"]
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_process_collector_measures_cpu_and_busiest_thread() -> None:
    with busy_child() as child:
        collector = ProcessCollector({"auth": child.pid}, cores=2)
        collector.collect()
        time.sleep(1.0)
        reading = collector.collect()
    assert reading.error is None
    used = reading.counters["cpu.auth"]
    waited = reading.counters["runq.auth"]
    assert used + waited >= 0.5  # it ran, or waited for a CPU, nearly all the time
    assert reading.gauges["procs.auth"] == 1
    assert reading.gauges["busiest.auth"] > 0.2
    assert reading.gauges["procs.diagnosis"] >= 1  # this test process
    assert reading.counters["host.total"] > 0


def test_process_collector_finds_load_generators_by_their_connections() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(10)
    port = server.getsockname()[1]
    code = (
        f"import socket, time; s = socket.create_connection(('127.0.0.1', {port})); time.sleep(20)"
    )
    # not our child (our children are the diagnosis' own): the shell exits, init adopts it
    started = subprocess.run(
        ["sh", "-c", f'{sys.executable} -c "{code}" >/dev/null 2>&1 & echo $!'],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    pid = int(started.stdout.strip())
    conn = None
    try:
        conn, _ = server.accept()
        collector = ProcessCollector({}, entry_ports=[port], cores=2)
        reading = collector.collect()
        assert reading.gauges["procs.generator"] == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if conn is not None:
            conn.close()
        server.close()


def test_log_tail_follows_appends_and_rotation(tmp_path: Path) -> None:
    log = tmp_path / "nginx.log"
    log.write_text("old line before we started\n")
    tail = LogTail(log)
    assert tail.read_lines() == []
    with log.open("a") as fh:
        fh.write("one\ntw")
    assert tail.read_lines() == [b"one"]
    with log.open("a") as fh:
        fh.write("o\n")
    assert tail.read_lines() == [b"two"]
    log.rename(tmp_path / "nginx.log.1")
    log.write_text("fresh\n")
    assert tail.read_lines() == [b"fresh"]


def test_log_events_counts_and_quotes(tmp_path: Path) -> None:
    nginx, auth = tmp_path / "nginx.log", tmp_path / "auth.log"
    nginx.write_text("")
    auth.write_text("")
    collector = LogEventsCollector({"nginx": nginx, "auth": auth})
    with nginx.open("a") as fh:
        fh.write("2026/11/26 [alert] 7#7: 16 worker_connections are not enough\n" * 4)
    with auth.open("a") as fh:
        fh.write("[CRITICAL] WORKER TIMEOUT (pid:9)\n")
    reading = collector.collect()
    assert reading.counters["nginx.conn_exhausted"] == 4
    assert reading.counters["auth.worker_timeout"] == 1
    assert len(reading.notes) == 3


class _Slow:
    name = "slow"

    def __init__(self) -> None:
        self.calls = 0

    def collect(self):  # type: ignore[no-untyped-def]
        from keelhaul.diagnose.model import Reading

        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("a bug in a collector")
        return Reading(counters={"n": float(self.calls)})

    def close(self) -> None:
        return None


def test_sampler_ticks_on_whole_seconds_and_survives_a_failing_collector() -> None:
    sampler = Sampler([_Slow()], max_ticks=100)
    sampler.start()
    time.sleep(2.6)
    collection = sampler.stop()
    times = [t.t for t in collection.ticks]
    assert len(times) >= 3
    assert all(float(t).is_integer() for t in times[1:-1])  # the first and last: when taken
    errors = [t.readings["slow"].error for t in collection.ticks]
    assert errors[1] is not None and "a bug in a collector" in errors[1]
    assert errors[2] is None


def test_sampler_memory_is_bounded() -> None:
    sampler = Sampler([_Slow()], max_ticks=3)
    for i in range(10):
        sampler.tick(float(i))
    collection = sampler.collection()
    assert [t.t for t in collection.ticks] == [7.0, 8.0, 9.0]
    assert collection.meta["dropped_ticks"] == 7


def test_stop_event_is_prompt() -> None:
    sampler = Sampler([], max_ticks=10)
    sampler.start()
    started = time.monotonic()
    done = threading.Event()
    sampler.stop()
    done.set()
    assert time.monotonic() - started < 5

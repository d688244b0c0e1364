"""Fairness of the token service's gevent worker under keep-alive load.

A client that pipelines thousands of requests on one connection never makes its greenlet
wait for input; without a yield, another connection's single request waits until all of
them are answered (gunicorn's own gevent worker shows it: the control case). keelhaul's
worker yields before each request, so the other request is answered long before the
stream ends, and makes its hub poll for I/O every few requests, so a connection whose
request has just arrived waits for a few answers, not for a whole run of callbacks.
Ordering, not timing:
what counts is how many of the stream's answers arrived before the other one's.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from keelhaul.netutil import free_port, wait_for_port
from keelhaul.stack import procs

pytestmark = pytest.mark.integration

SUPPORT = Path(__file__).resolve().parent.parent / "support"
STREAM = 3000
REQUEST = b"GET /token HTTP/1.1\r\nHost: test\r\n\r\n"


def _serve(tmp_path: Path, worker_class: str) -> Iterator[int]:
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    log = tmp_path / "gunicorn.log"
    pid = procs.spawn(
        [gunicorn, "-k", worker_class, "-w", "1", "-b", f"127.0.0.1:{port}",
         "--no-control-socket", "constant_wsgi:app"],
        log=log,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SUPPORT)},
    )  # fmt: skip
    ident = procs.identity(pid, ["gunicorn"])
    try:
        assert wait_for_port("127.0.0.1", port, 30), log.read_text()
        yield port
    finally:
        procs.stop_all([ident], timeout=10)


def _answers_before_the_other(port: int, streams: int = 1) -> int:
    """Pipeline STREAM requests on each of ``streams`` connections; once each has its first
    answer, send one request on another; return how many stream answers had arrived when
    it was answered."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(streams)]
    other = socket.create_connection(("127.0.0.1", port), timeout=60)
    received = [0] * streams
    started = [threading.Event() for _ in range(streams)]

    def read_stream(i: int) -> None:
        tail = b""
        while received[i] < STREAM:
            data = conns[i].recv(1 << 20)
            if not data:
                return
            data = tail + data
            received[i] += data.count(b"HTTP/1.1 200")
            tail = data[-12:]
            started[i].set()

    readers = [threading.Thread(target=read_stream, args=(i,), daemon=True) for i in range(streams)]
    for reader in readers:
        reader.start()
    try:
        for conn in conns:
            conn.sendall(REQUEST * STREAM)
        assert all(e.wait(60) for e in started), "a stream got no answer"
        other.sendall(REQUEST)
        assert other.recv(4096).startswith(b"HTTP/1.1 200")
        seen = sum(received)
        for reader in readers:
            reader.join(60)
        assert received == [STREAM] * streams  # every request of every stream was answered
        return seen
    finally:
        for conn in conns:
            conn.close()
        other.close()


@pytest.fixture
def keelhaul_worker(tmp_path: Path) -> Iterator[int]:
    yield from _serve(tmp_path, "keelhaul.auth.workers.JsonGeventWorker")


@pytest.fixture
def stock_worker(tmp_path: Path) -> Iterator[int]:
    yield from _serve(tmp_path, "gevent")


def test_a_pipelining_connection_does_not_starve_another(keelhaul_worker: int) -> None:
    assert _answers_before_the_other(keelhaul_worker) < STREAM // 2


@pytest.mark.parametrize("streams", [1, 4])
def test_a_new_request_waits_for_few_answers_to_busy_connections(
    keelhaul_worker: int, streams: int
) -> None:
    """The hub polls for I/O after ``workers.POLL_AFTER`` (4) requests answered without a
    poll: measured 6 (one stream) and 12 (four) answers before the other's. A bare
    ``sleep(0)`` yield polls only when gevent's callback run stops, after ~50 callbacks:
    47 in both cases (and with POLL_AFTER set out of reach)."""
    assert _answers_before_the_other(keelhaul_worker, streams) <= 24


def test_control_gunicorns_own_gevent_worker_starves_it(stock_worker: int) -> None:
    assert _answers_before_the_other(stock_worker) > STREAM // 2

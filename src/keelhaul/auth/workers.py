"""The token service's gunicorn workers: refusals in JSON, one write per response, fairness.

**JSON refusals.**
gunicorn answers a request it cannot parse or that exceeds its limits (request line over
8190 bytes, too many or too large header fields) itself, with an HTML page, before the
app sees it. :mod:`keelhaul.auth.serve` sets those limits above the app's own
(``limits.*``), so the app answers first; what still reaches gunicorn's limits gets the
same ``{"errors": [...]}`` body from here. Loaded by gunicorn by dotted path, in the
worker processes (after gevent's monkey-patching for the gevent one).

**One write per response** (gevent). gunicorn writes a response's status line and headers
with one ``sendall`` and the body with another. On a keep-alive connection with
``TCP_NODELAY`` each write is a packet, and each packet wakes the client: a call graph of
the token service under ``wrk`` put ~30% of the workers' samples in the header write's
``send`` alone. :class:`OneWriteSocket` holds the header bytes back and sends them with the
first body write (or when the request is done), so a token response is one ``send``.

**A yield per request** (gevent). A greenlet that has just answered on a keep-alive
connection reads the next request; if the client has already sent it, the read returns at
once and the greenlet never yields, so under load a few connections monopolise the worker
while others wait for seconds (one worker, constant-200 app, ``wrk -c64``: p99 526 ms
without, 17 ms with). ``gevent.sleep(0)`` first lets other ready connections go: a client
pipelining 3,000 requests no longer has them all answered before another connection's one
(``tests/integration/test_auth_worker_fairness.py``, gunicorn's own worker as the control).
A yield only when the connection's request came without the hub polling (libev's loop
``iteration``; ``bench/floor_workers.py`` ConditionalYield) was tried: no gain on the
constant-200 floor, and the warm token path's half-rate p99 was worse in both A/B runs of
``bench/token_ab.py``, so every request still yields (the yield is ~2% of a worker's
samples under wrk).

**A poll every few requests** (gevent). ``sleep(0)`` queues the greenlet behind the
callbacks already queued, and gevent runs ~50 callbacks before its loop polls for I/O
again; under load the yielding greenlets keep that queue full, so a connection whose
request arrives while its greenlet waits for input is noticed only at the next poll (strace
of a worker under ``wrk -c64``: 13 ``epoll_wait`` for 630 requests). After POLL_AFTER
requests answered in one loop iteration the yield is a positive sleep, which waits for the
loop's next iteration and so for a poll: a new request waits for 6-12 answers to others,
not 47 (the fairness test), and the warm path's max-rate p99 fell to 0.69x and 0.77x in
two A/B runs (``bench/token_ab.py --base``, 4 rounds each), the first round's spikes
(607 and 328 ms before) gone, at the same req/s and CPU per token; the half-rate p99 moved
0.87x and 1.28x (8-10 ms, within the noise). An unconditional ``sleep(1e-6)`` helped the
max-rate p99 as much but made the half-rate one 1.26x and 1.31x worse; forcing a poll when
the loop's clock was 2 ms old changed nothing (perhaps gunicorn's per-request keep-alive
timeout refreshes that clock; not checked).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import gevent
from gunicorn import util
from gunicorn.http.errors import (
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidRequestLine,
    InvalidRequestMethod,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ObsoleteFolding,
)
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

__all__ = [
    "JsonGeventWorker",
    "JsonSyncWorker",
    "JsonThreadWorker",
    "OneWriteGeventWorker",
    "OneWriteSocket",
    "client_error",
]

POLL_AFTER = 4
"""Requests a worker may answer without its hub polling for I/O before a yield forces a poll."""
_unpolled = [-1, 0]  # the loop iteration last seen, requests answered in it (one per process)

# exception -> (status, reason, Docker error code, message); first match wins
_CLIENT_ERRORS: tuple[tuple[tuple[type[BaseException], ...], int, str, str, str], ...] = (
    ((LimitRequestLine,), 414, "URI Too Long", "SIZE_INVALID", "request line too long"),
    (
        (LimitRequestHeaders,),
        431,
        "Request Header Fields Too Large",
        "SIZE_INVALID",
        "request header fields too large or too many",
    ),
    (
        (InvalidRequestLine, InvalidRequestMethod, InvalidHTTPVersion, ObsoleteFolding),
        400,
        "Bad Request",
        "BAD_REQUEST",
        "malformed HTTP request",
    ),
    (
        (InvalidHeader, InvalidHeaderName),
        400,
        "Bad Request",
        "BAD_REQUEST",
        "malformed HTTP request header",
    ),
)


def client_error(exc: BaseException) -> bytes | None:
    """The whole HTTP response for a client's protocol error, or None (gunicorn's own)."""
    if isinstance(exc, InvalidResponseHeader | InvalidResponseHeaderName):
        return None  # the app's fault, a 500: gunicorn's handling stays
    for kinds, status, reason, code, message in _CLIENT_ERRORS:
        if isinstance(exc, kinds):
            body = json.dumps(
                {"errors": [{"code": code, "message": message, "detail": None}]},
                separators=(",", ":"),
            ).encode()
            head = (
                f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nCache-Control: no-store\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            return head.encode("latin-1") + body
    return None


class _JsonErrors:
    """Mixin: answer client errors with JSON, leave everything else to gunicorn."""

    log: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        response = client_error(exc)
        if response is None:
            super().handle_error(req, client, addr, exc)  # type: ignore[misc]
            return
        ip = addr[0] if addr else ""
        self.log.warning("Invalid request from ip=%s: %s", ip, exc)
        with contextlib.suppress(OSError):
            util.write_nonblock(client, response)


class OneWriteSocket:
    """A socket whose first ``sendall`` is held until the second one (or :meth:`flush`),
    then both go as one; every other call goes to the socket unchanged."""

    __slots__ = ("_held", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._held: bytes | None = None

    def sendall(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            return
        if held:
            self._held = b""  # from now on, write through
            self._sock.sendall(held + data)
        else:
            self._sock.sendall(data)

    def flush(self) -> None:
        """Send what is held (a response without a body); idempotent."""
        held = self._held
        self._held = b""
        if held:
            self._sock.sendall(held)

    def fileno(self) -> int:
        self.flush()  # sendfile writes to the descriptor directly: the headers go first
        return int(self._sock.fileno())

    def __getattr__(self, name: str) -> Any:
        if name in ("sendfile", "send", "shutdown", "close"):
            self.flush_quietly()  # anything else that writes or ends: the headers go first
        return getattr(self._sock, name)

    def flush_quietly(self) -> None:
        with contextlib.suppress(OSError):
            self.flush()


def fair_yield() -> None:
    """Let other connections go first: behind the greenlets already queued (``sleep(0)``),
    and after POLL_AFTER requests answered without the hub polling for I/O, behind its
    next poll too (any positive sleep waits for the loop's next iteration)."""
    iteration = gevent.get_hub().loop.iteration
    if iteration != _unpolled[0]:
        _unpolled[0], _unpolled[1] = iteration, 0
    _unpolled[1] += 1
    gevent.sleep(1e-6 if _unpolled[1] > POLL_AFTER else 0)


class OneWriteGeventWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with :class:`OneWriteSocket` under each request and a
    yield before it."""

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        fair_yield()
        out = OneWriteSocket(sock)
        try:
            return super().handle_request(listener_name, req, out, addr)
        finally:
            out.flush_quietly()


class JsonGeventWorker(_JsonErrors, OneWriteGeventWorker):
    """The token service's gevent worker: one write per response, a yield per request,
    refusals in JSON."""


class JsonSyncWorker(_JsonErrors, SyncWorker):  # type: ignore[misc]
    pass


class JsonThreadWorker(_JsonErrors, ThreadWorker):  # type: ignore[misc]
    pass

"""gunicorn's gevent worker, with one socket write per response and a yield per request.

gunicorn writes a response's status line and headers with one ``sendall`` and the body
with another. On a keep-alive connection with ``TCP_NODELAY`` each write is a packet, and
each packet wakes the client: a call graph of the token service under ``wrk`` put ~30% of
the workers' samples in the header write's ``send`` alone. :class:`OneWriteSocket` holds
the header bytes back and sends them with the first body write (or when the request is
done, for a response without a body), so a token response is one ``send``.

Each request also starts with ``gevent.sleep(0)`` (see :func:`~keelhaul.auth.serve.
yield_per_request` for why): other ready connections go first, so under saturation no
keep-alive connection monopolises the worker.

Only gunicorn's worker process imports this module (by its dotted name in the gunicorn
settings), after gevent's monkey-patching.
"""

from __future__ import annotations

import contextlib
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker

__all__ = ["OneWriteGeventWorker", "OneWriteSocket"]


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


class OneWriteGeventWorker(GeventWorker):  # type: ignore[misc]
    """``-k keelhaul.auth.worker.OneWriteGeventWorker``: gunicorn's gevent worker with
    :class:`OneWriteSocket` under each request and a yield before it."""

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        gevent.sleep(0)
        out = OneWriteSocket(sock)
        try:
            return super().handle_request(listener_name, req, out, addr)
        finally:
            out.flush_quietly()

"""Variants of the token service's gevent worker, one cost removed each, for
``bench/floor_ab.py`` (loaded by gunicorn by dotted path, ``-k floor_workers.NoYield``)."""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker

from keelhaul.auth.workers import JsonGeventWorker, OneWriteSocket


class NoYield(JsonGeventWorker):
    """One write per response and JSON refusals, no yield before a request."""

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        out = OneWriteSocket(sock)
        try:
            return GeventWorker.handle_request(self, listener_name, req, out, addr)
        finally:
            out.flush_quietly()


class YieldEvery(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker plus an unconditional yield per request (no one-write)."""

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        gevent.sleep(0)
        return super().handle_request(listener_name, req, sock, addr)


class ConditionalYield(JsonGeventWorker):
    """Tried and not kept: yield only when this connection's previous request was answered
    without the hub polling since (its next request was already waiting)."""

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        current: Any = gevent.getcurrent()
        loop = gevent.get_hub().loop
        if getattr(current, "keelhaul_polled", -1) == loop.iteration:
            gevent.sleep(0)
        current.keelhaul_polled = loop.iteration
        out = OneWriteSocket(sock)
        try:
            return GeventWorker.handle_request(self, listener_name, req, out, addr)
        finally:
            out.flush_quietly()

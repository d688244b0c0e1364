"""The Locust user: one simulated docker client, built by :func:`make_user_class`.

Imports Locust (and so gevent's monkey-patching): only the load kit's process entry points
import it.

A ``RegistryUser`` is a ``FastHttpUser``: its ``self.client`` (geventhttpclient, keep-alive
connections, ``parallel + 1`` of them) carries every request, through
:class:`~keelhaul.client.locust_transport.LocustTransport`, so each request lands in
Locust's statistics (and ours, see :mod:`keelhaul.load.hooks`) under its stage name. Its one
task runs the next iteration of the run (:meth:`~keelhaul.load.runtime.Runtime.iterate`);
there is no wait between iterations (``wait_time = constant(0)``): in the closed model a
user starts its next flow when the last one ends, in the open model the pacer decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from gevent import ssl as gevent_ssl
from locust import FastHttpUser, constant, task

from keelhaul.client.locust_transport import LocustTransport
from keelhaul.client.registry import RegistryClient
from keelhaul.client.transport import Request, Response
from keelhaul.load.runtime import Runtime

__all__ = ["BodyCounter", "make_user_class"]

DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0


class BodyCounter:
    """A transport around :class:`LocustTransport` that tells the user how many body bytes
    a request sends, so that uploads count the bytes they send (Locust only knows response
    lengths). The count travels in the request event's ``context["bytes"]``, which
    FastHttpSession builds from the user's :meth:`context` while sending, in the sending
    greenlet."""

    __slots__ = ("_inner", "sending")

    def __init__(self, inner: LocustTransport) -> None:
        self._inner = inner
        self.sending: dict[int, int] = {}

    def send(self, request: Request) -> Response:
        body = request.body
        if body is None:
            return self._inner.send(request)
        key = id(gevent.getcurrent())
        self.sending[key] = len(body)
        try:
            return self._inner.send(request)
        finally:
            self.sending.pop(key, None)

    def close(self) -> None:
        self._inner.close()

    def context(self) -> dict[str, Any]:
        sent = self.sending.get(id(gevent.getcurrent())) if self.sending else None
        return {} if sent is None else {"bytes": sent}


def _ssl_factory(ca_cert: str) -> Callable[[], Any]:
    return lambda: gevent_ssl.create_default_context(cafile=ca_cert)


def make_user_class(runtime: Runtime) -> type[FastHttpUser]:
    """A user class bound to ``runtime`` (one per Environment; nothing global)."""

    class RegistryUser(FastHttpUser):
        """A docker client: each iteration one flow of the scenario mix, fresh login first.

        Connection settings come from the run plan when the user is created: the network
        timeout, TLS verification (off only with ``--insecure``; the local stack's own CA
        when it serves TLS) and ``concurrency`` (``parallel`` blob transfers + 1).
        """

        abstract = False
        wait_time = constant(0)
        network_timeout = DEFAULT_TIMEOUT_S
        connection_timeout = CONNECT_TIMEOUT_S
        concurrency = 4
        insecure = False

        def __init__(self, environment: Any) -> None:
            plan = runtime.plan
            if plan is not None:
                self.network_timeout = plan.timeout_s
                self.connection_timeout = min(plan.timeout_s, CONNECT_TIMEOUT_S)
                self.concurrency = plan.parallel + 1
                self.insecure = plan.insecure
                if plan.ca_cert and not plan.insecure and not plan.plain_http:
                    self.ssl_context_factory = _ssl_factory(plan.ca_cert)
            super().__init__(environment)
            self.transport = BodyCounter(LocustTransport(self.client))
            self.have: set[str] = set()
            """Blobs this client holds (``--only-missing``)."""
            self.kept: RegistryClient | None = None
            """The client kept across iterations by ``pull-reuse``."""

        def on_start(self) -> None:
            runtime.wait_configured()

        def on_stop(self) -> None:
            self.client.client.close()  # its keep-alive connections

        def context(self) -> dict[str, Any]:
            return self.transport.context()

        @task
        def iteration(self) -> None:
            runtime.iterate(self)

    return RegistryUser

"""A transport that answers from a function: the registry protocol's loops under unit tests.

In the spirit of httpx's ``MockTransport``: :class:`MockTransport` hands every
:class:`~keelhaul.client.transport.Request` to a *handler* and returns what it answers as
a :class:`~keelhaul.client.transport.Response`, so that the request loop (challenge ->
token -> retry), single-flight token fetches, ``Range`` resumes and upload restarts run
exactly as over the network, against an in-memory registry written for the test. Only the
edge is fake: every line of :class:`~keelhaul.client.registry.RegistryClient` runs.

A handler may raise :class:`~keelhaul.errors.ConnectionDropped` (the request broke while
being sent) or answer with a body iterator that raises it (the response broke mid-body),
the two failures the client recovers from. Every exchange is logged in
:attr:`MockTransport.log` (thread-safe) for the test to assert the sequence of requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from keelhaul.client.transport import Headers, Request, Response

__all__ = ["Exchange", "MockResponse", "MockTransport", "Reply", "request_body"]


@dataclass(frozen=True)
class Reply:
    """What a handler answers. ``body`` may be an iterator of chunks that raises
    :class:`~keelhaul.errors.ConnectionDropped` part-way."""

    status: int
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""


@dataclass(frozen=True)
class Exchange:
    """One request as the transport saw it, and the status it got (``0``: it broke)."""

    method: str
    url: str
    name: str
    headers: Mapping[str, str]
    status: int


def request_body(request: Request) -> bytes:
    """The whole request body, streamed bodies joined (what a server reads)."""
    body = request.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return b"".join(bytes(chunk) for chunk in body)


class MockResponse(Response):
    def __init__(self, request: Request, reply: Reply) -> None:
        pairs = reply.headers.items() if isinstance(reply.headers, Mapping) else reply.headers
        super().__init__(request, reply.status, Headers(pairs))
        self._source = reply.body
        self.finished = False

    def _chunks(self) -> Iterator[bytes]:
        if isinstance(self._source, bytes):
            if self._source:
                yield self._source
            return
        yield from self._source

    def _finish(self) -> None:
        self.finished = True


class MockTransport:
    """``handler(request) -> Reply``; thread-safe if the handler is."""

    def __init__(self, handler: Callable[[Request], Reply]) -> None:
        self._handler = handler
        self._lock = threading.Lock()
        self.log: list[Exchange] = []
        self.closed = False

    def _record(self, request: Request, status: int) -> None:
        with self._lock:
            self.log.append(
                Exchange(request.method, request.url, request.name, dict(request.headers), status)
            )

    def send(self, request: Request) -> Response:
        try:
            reply = self._handler(request)
        except BaseException:
            self._record(request, 0)
            raise
        self._record(request, reply.status)
        return MockResponse(request, reply).settled()

    def names(self) -> list[str]:
        """The statistics names of every request so far, in order."""
        with self._lock:
            return [e.name for e in self.log]

    def close(self) -> None:
        self.closed = True

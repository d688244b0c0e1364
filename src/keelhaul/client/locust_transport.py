"""The load kit's transport: Locust's ``FastHttpSession``, so every request of a
:class:`~keelhaul.client.registry.RegistryClient` lands in Locust's statistics under its
``name`` (``blob GET``, ``token``...). Importing this module imports Locust (and so
gevent's monkey-patching): only the load kit does.

What FastHttpSession measures (locust 2.x, ``contrib/fasthttp.py``): without ``stream`` it
reads the whole body before it stops the clock, so the reported time covers the transfer
but the body sits in memory; with ``stream=True`` it stops the clock when the headers
arrive and takes ``response_length`` from ``Content-Length``. Blobs are therefore requested
with ``stream=True`` and ``catch_response=True``: the body is read here in 1 MiB chunks
(never held whole), and only then is the event fired, with ``response_time`` rewritten to
cover the last byte and ``response_length`` set to the bytes actually received. Small
bodies (manifests, tokens, listings) keep FastHttpSession's own timing, which already
covers them.

The session is told to treat every status as a response (``valid_response_codes``), so
the registry's ``401`` challenges and JSON error bodies reach the protocol core instead of
becoming geventhttpclient exceptions; whether a request counts as a failure is decided by
the core (a ``404`` to a blob ``HEAD`` is an answer, not an error).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

from locust.contrib.fasthttp import FastHttpSession

from keelhaul.client.transport import Body, Headers, Request, Response
from keelhaul.errors import ConnectionDropped, RegistryUnreachable, TLSFailure

__all__ = ["LocustTransport"]

READ_CHUNK = 64 * 1024  # small blobs need no 1 MiB buffer; large ones stream anyway
ALL_STATUSES = frozenset(range(100, 600))


class _Readable:
    """What geventhttpclient's ``sendfile`` fallback wants: ``len``, ``read``; chunks as they
    come (``read`` may return more than asked, the sender loops until all is sent)."""

    __slots__ = ("_chunks", "_length")

    def __init__(self, body: Body) -> None:
        self._length = len(body)
        self._chunks = iter(body)

    def __len__(self) -> int:
        return self._length

    def read(self, _size: int = -1) -> bytes:
        return next(self._chunks, b"")


def _transport_error(error: BaseException | None, url: str) -> Exception:
    reason = f"{type(error).__name__}: {error}" if error is not None else "no response"
    if isinstance(error, ssl.SSLError):
        return TLSFailure(f"TLS with {url} failed ({reason})")
    if isinstance(error, ConnectionRefusedError | socket.gaierror | TimeoutError):
        return RegistryUnreachable(f"cannot reach {url}: {reason}")
    return ConnectionDropped(f"connection for {url} broke: {reason}"[:300])


class _LocustResponse(Response):
    def __init__(self, request: Request, ctx: Any, started: float, headers: Headers) -> None:
        # ``ctx`` is a locust ResponseContextManager; Locust's methods are untyped
        super().__init__(request, ctx.status_code, headers)
        self._ctx = ctx
        self._started = started
        self._body_done: float | None = None

    def _chunks(self) -> Iterator[bytes]:
        if not self.request.stream:
            content = self._ctx.content or b""
            if content:
                yield content
            return
        raw = getattr(self._ctx, "_response", None)
        if raw is None:
            return
        try:
            while True:
                chunk = raw.read(READ_CHUNK)
                if not chunk:
                    break
                yield bytes(chunk)
        except Exception as exc:  # noqa: BLE001 - geventhttpclient raises several kinds
            raise _transport_error(exc, self.request.url) from None
        finally:
            self._body_done = time.perf_counter()

    def _finish(self) -> None:
        ctx = self._ctx
        meta: dict[str, Any] = ctx.request_meta
        if self.request.stream:
            end = self._body_done if self._body_done is not None else time.perf_counter()
            meta["response_time"] = (end - self._started) * 1000
            meta["response_length"] = self.received
            raw = getattr(ctx, "_response", None)
            if raw is not None and self._body_done is None:
                raw.release()  # body left unread (an error answer): do not reuse the socket
        failure = self.failure
        if failure is None:
            ctx.success()
        else:
            ctx.failure(failure)
        ctx.__exit__(None, None, None)


class LocustTransport:
    """Wraps a Locust user's ``self.client``; the session is reconfigured to accept every
    HTTP status (see the module docstring)."""

    def __init__(self, session: FastHttpSession) -> None:
        self.session = session
        # per session, on purpose: the ClassVar stays as it is for every other user
        session.client.valid_response_codes = ALL_STATUSES  # type: ignore[misc]

    def send(self, request: Request) -> Response:
        headers = dict(request.headers)
        payload: Any = request.body
        if payload is not None and not isinstance(payload, bytes):
            headers["Content-Length"] = str(len(payload))
            payload = _Readable(payload) if len(payload) else b""
        started = time.perf_counter()
        ctx: Any = self.session.request(
            request.method,
            request.url,
            name=request.name,
            data=payload,
            headers=headers,
            catch_response=True,
            stream=request.stream,
            allow_redirects=request.follow_redirects,
        )
        ctx.__enter__()
        if ctx.status_code == 0:
            error = _transport_error(getattr(ctx, "error", None), request.url)
            ctx.failure(str(error))
            ctx.__exit__(None, None, None)
            raise error
        pairs = list(ctx.headers.items()) if ctx.headers is not None else []
        return _LocustResponse(request, ctx, started, Headers(pairs))

    def close(self) -> None:
        """The session belongs to the Locust user; nothing to release here."""

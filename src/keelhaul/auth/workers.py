"""gunicorn workers whose own refusals are Docker-style JSON, like every answer of the app.

gunicorn answers a request it cannot parse or that exceeds its limits (request line over
8190 bytes, too many or too large header fields) itself, with an HTML page, before the
app sees it. :mod:`keelhaul.auth.serve` sets those limits above the app's own
(``limits.*``), so the app answers first; what still reaches gunicorn's limits gets the
same ``{"errors": [...]}`` body from here. Loaded by gunicorn by dotted path, in the
worker processes.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

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

__all__ = ["JsonGeventWorker", "JsonSyncWorker", "JsonThreadWorker", "client_error"]

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


class JsonGeventWorker(_JsonErrors, GeventWorker):  # type: ignore[misc]
    pass


class JsonSyncWorker(_JsonErrors, SyncWorker):  # type: ignore[misc]
    pass


class JsonThreadWorker(_JsonErrors, ThreadWorker):  # type: ignore[misc]
    pass

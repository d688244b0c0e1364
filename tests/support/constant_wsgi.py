"""A WSGI app that answers a constant 200: gunicorn worker tests serve it (by dotted path,
with this folder on ``PYTHONPATH``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

_BODY = b'{"token":"constant"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))]
    )
    return [_BODY]

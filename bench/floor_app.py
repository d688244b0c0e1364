"""The serving floor: a WSGI app that answers a constant 200, served with the same
gunicorn/gevent settings as the token service (``bench/token_bench.py``, row d)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

_BODY = b'{"token":"constant"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))]
    )
    return [_BODY]

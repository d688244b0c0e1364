"""The app's own limit on request headers, so it answers 431 in JSON before gunicorn would.

gunicorn's limits (:func:`keelhaul.auth.serve.gunicorn_options`) sit above these; nothing
the token endpoint needs comes close (Authorization is bounded by ``max_username_length``
and ``max_password_length``).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import request
from werkzeug.exceptions import RequestHeaderFieldsTooLarge

from keelhaul.auth.settings import LimitSettings

__all__ = ["header_limits"]

_UNPREFIXED = ("CONTENT_TYPE", "CONTENT_LENGTH")


def measure(environ: dict[str, object]) -> tuple[int, int]:
    """(header fields, bytes of names and values) of a WSGI request."""
    fields = size = 0
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name_length = len(key) - len("HTTP_")
        elif key in _UNPREFIXED:
            name_length = len(key)
        else:
            continue
        fields += 1
        size += name_length + len(str(value))
    return fields, size


def header_limits(limits: LimitSettings) -> Callable[[], None]:
    """A Flask ``before_request`` hook raising 431 over ``limits.max_header*``."""

    def check() -> None:
        fields, size = measure(request.environ)
        if fields > limits.max_headers or size > limits.max_header_bytes:
            raise RequestHeaderFieldsTooLarge(
                f"request headers too large: {fields} fields, {size} bytes (limits "
                f"{limits.max_headers} fields, {limits.max_header_bytes} bytes)"
            )

    return check

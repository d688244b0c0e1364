"""A Redis the stack does not run: ``redis_url``, taken apart once. Pure.

The stack either runs its own ``redis-server`` (the default) or, with ``redis_url``, uses
a Redis someone else runs (a shared instance: the field report's "staging service pointed
at the production Redis"). :class:`ExternalRedis` is that URL parsed and checked, so that
no message, report, status line or rendered config ever shows its password by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

__all__ = ["ExternalRedis", "parse_external_redis", "redact_redis_url"]


@dataclass(frozen=True)
class ExternalRedis:
    """``redis://[:password@]host[:port][/db]``: a Redis the stack does not run.

    The registry's blob-descriptor cache and the token service's credential cache and
    throttle both use database ``db`` (their keys never collide: the token service's
    start with ``keelhaul:``).
    """

    host: str
    port: int = 6379
    db: int = 0
    password: str | None = field(default=None, repr=False)

    @property
    def addr(self) -> str:
        """``host:port``, as the registry's ``redis.addr`` wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, *, password: bool = True) -> str:
        """The URL again; ``password=False`` leaves the credentials out (for a config
        whose password comes from elsewhere)."""
        auth = ""
        if password and self.password is not None:
            auth = f":{quote(self.password, safe='')}@"
        return f"redis://{auth}{self.addr}/{self.db}"

    @property
    def redacted(self) -> str:
        """For people: the password shown as ``***``."""
        auth = "" if self.password is None else ":***@"
        return f"redis://{auth}{self.addr}/{self.db}"


def parse_external_redis(url: str) -> ExternalRedis:
    """ValueError (whose text never holds the password) for anything but a usable
    ``redis://`` URL: the registry speaks plain TCP only, so no ``rediss://`` or socket."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("is not a URL like redis://HOST:PORT/DB") from None
    if parts.scheme != "redis":
        raise ValueError(
            "must start with redis:// (the registry's Redis client speaks plain TCP only)"
        )
    if not parts.hostname:
        raise ValueError("names no host; write redis://HOST:PORT/DB")
    if parts.query or parts.fragment:
        raise ValueError("takes no query or fragment; write redis://HOST:PORT/DB")
    path = parts.path.strip("/")
    if path and not (path.isdigit() and int(path) < 16):
        raise ValueError("database must be a number 0..15 (redis://HOST:PORT/DB)")
    if parts.username:
        raise ValueError(
            "names a user; the registry (distribution 2.8) logs in with a password only: "
            "write redis://:PASSWORD@HOST:PORT/DB"
        )
    if port == 0:
        raise ValueError("port must be 1..65535")
    return ExternalRedis(
        host=parts.hostname,
        port=port or 6379,
        db=int(path or 0),
        password=unquote(parts.password) if parts.password is not None else None,
    )


def redact_redis_url(url: str | None) -> str | None:
    """Any Redis URL with its password shown as ``***`` (unparsable ones: hidden whole)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()

"""The doctor's only network I/O: is the realm answering, and what time do the tiers think
it is (their HTTP ``Date`` header against this host's clock)."""

from __future__ import annotations

import ssl
import time
from email.utils import parsedate_to_datetime

import httpx

from keelhaul.stack.doctor.model import ClockReading, RealmProbe

__all__ = ["clock_offset", "probe_realm", "read_clock"]

TIMEOUT = 5.0


def clock_offset(date_header: str, sent: float, received: float) -> float | None:
    """Seconds the server's clock is ahead; ``sent``/``received`` are this host's epoch
    seconds around the request. ``Date`` has whole seconds, so its middle is +0.5 s."""
    try:
        when = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp() + 0.5 - (sent + received) / 2


def _client(ca_cert: str | None) -> httpx.Client:
    verify: ssl.SSLContext | bool = True
    if ca_cert is not None:
        verify = ssl.create_default_context(cafile=ca_cert)
    # trust_env=False: what matters is the path from here, not a developer's proxy
    return httpx.Client(timeout=TIMEOUT, trust_env=False, verify=verify)


def _get(
    url: str, ca_cert: str | None, params: dict[str, str] | None = None
) -> tuple[httpx.Response | None, str | None, float, float]:
    sent = time.time()
    try:
        with _client(ca_cert) as client:
            response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        reason = str(exc).strip() or type(exc).__name__
        return None, f"{type(exc).__name__}: {reason}"[:200], sent, time.time()
    return response, None, sent, time.time()


def _reading(
    tier: str, url: str, response: httpx.Response, sent: float, received: float
) -> ClockReading:
    date = response.headers.get("date")
    if date is None:
        return ClockReading(tier, url, None, "the answer carries no Date header")
    offset = clock_offset(date, sent, received)
    if offset is None:
        return ClockReading(tier, url, None, f"unreadable Date header {date!r}")
    return ClockReading(tier, url, offset, f"Date: {date}")


def probe_realm(
    url: str, service: str | None, ca_cert: str | None = None
) -> tuple[RealmProbe, ClockReading]:
    """An anonymous token request, as a client's first one is."""
    params = {"service": service} if service else None
    response, error, sent, received = _get(url, ca_cert, params)
    if response is None:
        return RealmProbe(url, None, error), ClockReading("auth", url, None, "realm unreachable")
    return RealmProbe(url, response.status_code, None), _reading(
        "auth", url, response, sent, received
    )


def read_clock(tier: str, url: str, ca_cert: str | None = None) -> ClockReading:
    response, error, sent, received = _get(url, ca_cert)
    if response is None:
        return ClockReading(tier, url, None, f"GET {url} failed ({error})")
    return _reading(tier, url, response, sent, received)

"""One health probe per component, by URL. Never raises: a failure is a :class:`Health`."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx

from keelhaul.stack.procs import Health

__all__ = ["PROBES", "probe_auth", "probe_redis", "probe_registry"]

TIMEOUT = 2.0


def _client() -> httpx.Client:
    # trust_env=False: a developer's HTTP(S)_PROXY must not intercept loopback probes
    return httpx.Client(timeout=TIMEOUT, trust_env=False)


def probe_redis(url: str, timeout: float = TIMEOUT) -> Health:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        return Health(False, f"no answer on {host}:{port} ({exc.strerror or exc})")
    if answer.startswith(b"+PONG"):
        return Health(True, "PONG")
    return Health(False, f"unexpected answer to PING: {answer[:32]!r}")


def probe_auth(url: str) -> Health:
    """The token service's ``/healthz``: 200 with status ok or degraded."""
    try:
        with _client() as client:
            response = client.get(f"{url}/healthz")
    except httpx.HTTPError as exc:
        return Health(False, f"GET /healthz failed: {type(exc).__name__}")
    try:
        body = response.json()
        status = str(body.get("status", "?")) if isinstance(body, dict) else "?"
    except ValueError:
        status = "?"
    if response.status_code == 200 and status in ("ok", "degraded"):
        return Health(True, status)
    return Health(False, f"GET /healthz: HTTP {response.status_code}, status {status}")


def probe_registry(url: str, debug_url: str) -> Health:
    """Debug ``/debug/health`` is 200 and ``/v2/`` asks for a Bearer token."""
    try:
        with _client() as client:
            debug = client.get(f"{debug_url}/debug/health")
            base = client.get(f"{url}/v2/")
    except httpx.HTTPError as exc:
        return Health(False, f"registry unreachable: {type(exc).__name__}")
    if debug.status_code != 200:
        return Health(False, f"GET /debug/health: HTTP {debug.status_code} {debug.text[:200]}")
    challenge = base.headers.get("www-authenticate", "")
    if base.status_code != 401 or not challenge.lower().startswith("bearer "):
        return Health(False, f"GET /v2/: HTTP {base.status_code}, no Bearer challenge")
    return Health(True, "ok")


PROBES: Mapping[str, Callable[[Mapping[str, str]], Health]] = {
    "redis": lambda urls: probe_redis(urls["redis"]),
    "auth": lambda urls: probe_auth(urls["auth"]),
    "registry": lambda urls: probe_registry(urls["registry"], urls["registry_debug"]),
}
"""Component name -> probe over the stack's ``urls`` (as recorded in ``stack.json``)."""

"""One health probe per component, by URL. Never raises: a failure is a :class:`Health`."""

from __future__ import annotations

import functools
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx
import redis

from keelhaul.stack.monitoring import EXPORTERS, PROMETHEUS, Exporter, expected_jobs
from keelhaul.stack.nginx import STATUS_PATH
from keelhaul.stack.procs import Health
from keelhaul.stack.redisurl import ExternalRedis
from keelhaul.stack.state import StackState

__all__ = [
    "PROBES",
    "probe_auth",
    "probe_exporter",
    "probe_external_redis",
    "probe_nginx",
    "probe_prometheus",
    "probe_redis",
    "probe_registry",
]

TIMEOUT = 2.0
_REALM = re.compile(r'realm="([^"]*)"')


def _client(ca_cert: str | None = None) -> httpx.Client:
    # trust_env=False: a developer's HTTP(S)_PROXY must not intercept loopback probes
    verify: ssl.SSLContext | bool = True
    if ca_cert is not None:
        verify = ssl.create_default_context(cafile=ca_cert)
    return httpx.Client(timeout=TIMEOUT, trust_env=False, verify=verify)


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


def probe_external_redis(target: ExternalRedis, timeout: float = TIMEOUT) -> Health:
    """A Redis the stack does not run: PING as its clients will (with its password).
    The detail names the address, never the password nor the server's own error text."""
    client: redis.Redis[bytes] = redis.Redis(
        host=target.host,
        port=target.port,
        db=target.db,
        password=target.password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    try:
        client.ping()
    except redis.AuthenticationError:
        return Health(False, f"{target.redacted} refused the password (AUTH)")
    except redis.ResponseError as exc:
        first = str(exc).split(" ", 1)[0]  # NOAUTH, WRONGPASS, ERR...: a code, never a value
        return Health(False, f"{target.redacted} answered PING with an error ({first})")
    except (redis.RedisError, OSError) as exc:
        return Health(False, f"no Redis answers at {target.redacted} ({type(exc).__name__})")
    finally:
        client.close()
    return Health(True, "PONG (external)")


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


def probe_nginx(entry: str, status_url: str, realm: str, ca_cert: str | None = None) -> Health:
    """The proxy answers ``/healthz``, its status page counts connections, and ``/v2/``
    through it asks for a Bearer token at the proxy's own ``/token``."""
    try:
        with _client(ca_cert) as client:
            health = client.get(f"{entry}/healthz")
            base = client.get(f"{entry}/v2/")
            status = client.get(f"{status_url}{STATUS_PATH}")
    except httpx.HTTPError as exc:
        return Health(False, f"proxy unreachable: {type(exc).__name__}")
    if health.status_code != 200:
        return Health(False, f"GET /healthz: HTTP {health.status_code}")
    if status.status_code != 200 or "Active connections" not in status.text:
        return Health(False, f"GET {STATUS_PATH}: HTTP {status.status_code}")
    challenge = base.headers.get("www-authenticate", "")
    found = _REALM.search(challenge)
    if base.status_code != 401 or found is None:
        return Health(False, f"GET /v2/ via the proxy: HTTP {base.status_code}, no challenge")
    if found.group(1) != realm:
        return Health(False, f"the registry's realm is {found.group(1)}, not {realm}")
    return Health(True, "ok")


def probe_exporter(url: str, healthy_line: str) -> Health:
    """``/metrics`` answers and shows the line that proves the exporter reads its source."""
    try:
        with _client() as client:
            response = client.get(f"{url}/metrics")
    except httpx.HTTPError as exc:
        return Health(False, f"GET /metrics failed: {type(exc).__name__}")
    if response.status_code != 200:
        return Health(False, f"GET /metrics: HTTP {response.status_code}")
    lines = response.text.splitlines()
    if not any(line.startswith(healthy_line) for line in lines):
        return Health(False, f"/metrics has no {healthy_line!r}")
    return Health(True, "ok")


def probe_prometheus(url: str, jobs: list[str]) -> Health:
    """Ready, and every job's target scraped successfully (``up``) at least once."""
    try:
        with _client() as client:
            ready = client.get(f"{url}/-/ready")
            targets = client.get(f"{url}/api/v1/targets", params={"state": "active"})
    except httpx.HTTPError as exc:
        return Health(False, f"Prometheus unreachable: {type(exc).__name__}")
    if ready.status_code != 200:
        return Health(False, f"GET /-/ready: HTTP {ready.status_code}")
    try:
        active = targets.json()["data"]["activeTargets"]
        health = {str(t["labels"]["job"]): str(t["health"]) for t in active}
    except (ValueError, KeyError, TypeError):
        return Health(False, f"GET /api/v1/targets: HTTP {targets.status_code}, unexpected body")
    down = [f"{job} {health.get(job, 'missing')}" for job in jobs if health.get(job) != "up"]
    if down:
        return Health(False, f"targets not up: {', '.join(down)}")
    return Health(True, f"{len(jobs)} targets up")


def _probe_exporter(exporter: Exporter, state: StackState) -> Health:
    return probe_exporter(state.urls[exporter.component], exporter.healthy_line)


def _probe_nginx(state: StackState) -> Health:
    urls = state.urls
    realm = state.realm or f"{urls['nginx']}/token"
    return probe_nginx(urls["nginx"], urls["nginx_status"], realm, state.ca_cert)


PROBES: Mapping[str, Callable[[StackState], Health]] = {
    "redis": lambda state: probe_redis(state.urls["redis"]),
    "auth": lambda state: probe_auth(state.urls["auth"]),
    "registry": lambda state: probe_registry(state.urls["registry"], state.urls["registry_debug"]),
    "nginx": _probe_nginx,
    **{exporter.component: functools.partial(_probe_exporter, exporter) for exporter in EXPORTERS},
    PROMETHEUS: lambda state: probe_prometheus(state.urls[PROMETHEUS], expected_jobs(state.ports)),
}
"""Component name -> probe over the stack as recorded in ``stack.json``."""

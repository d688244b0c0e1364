"""Config files (already read) -> the doctor's views of each tier. Pure.

The token service's config is read section by section against its own schema
(:mod:`keelhaul.auth.settings`), so a deployment whose ``secret`` comes from the
environment (as the rendered ones do) is still checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ValidationError

from keelhaul.auth.settings import CacheSettings, ServerSettings, TokenSettings
from keelhaul.settings_base import validation_problems
from keelhaul.stack.doctor.model import (
    AuthView,
    CertInfo,
    KeyView,
    NginxView,
    RedisRef,
    RegistryView,
    Route,
)
from keelhaul.stack.doctor.nginxconf import Directive, effective, find, find_all, select_location
from keelhaul.stack.storage import storage_identity

__all__ = [
    "BLOB_URIS",
    "auth_view",
    "cert_infos",
    "key_cert_paths",
    "nginx_view",
    "parse_redis_url",
    "registry_view",
]

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")

BLOB_URIS: Mapping[str, str] = {
    "upload": "/v2/library/app/blobs/uploads/0b0e6b6a-7b8e-4f3c-9d55-3c4a7e2f1a90",
    "download": "/v2/library/app/blobs/sha256:" + "0" * 64,
    "token": "/token",
}
"""One URI per kind of request: which ``location`` serves them decides how they are proxied."""

ROUTE_SETTINGS = (
    "proxy_request_buffering",
    "proxy_buffering",
    "proxy_max_temp_file_size",
    "client_max_body_size",
    "proxy_http_version",
)


def _host(host: str) -> str:
    return "127.0.0.1" if host.lower() in LOOPBACK_NAMES else host


def parse_redis_url(url: str) -> RedisRef:
    """``redis://[user:pw@]host[:port][/db]``, ``rediss://...``, ``unix:///path?db=N``."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    db_text = (query.get("db") or [""])[0]
    if parts.scheme == "unix":
        return RedisRef(parts.path, 0, int(db_text or 0), scheme="unix")
    path_db = parts.path.strip("/")
    db = int(path_db) if path_db.isdigit() else int(db_text or 0)
    return RedisRef(_host(parts.hostname or "127.0.0.1"), parts.port or 6379, db, parts.scheme)


def _registry_redis(section: Any) -> RedisRef | None:
    if not isinstance(section, dict) or not section.get("addr"):
        return None
    host, _, port = str(section["addr"]).rpartition(":")
    if not host:
        host, port = port, "6379"
    try:
        db = int(section.get("db") or 0)
        number = int(port)
    except ValueError:
        return RedisRef(_host(host), 0, 0)
    return RedisRef(_host(host.strip("[]")), number, db)


def cert_infos(pem: bytes) -> tuple[CertInfo, ...]:
    """Every certificate in a PEM file (ValueError when there is none)."""
    out = []
    for cert in x509.load_pem_x509_certificates(pem):
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        out.append(
            CertInfo(
                subject=cert.subject.rfc4514_string(),
                spki_sha256=hashlib.sha256(spki).hexdigest(),
                not_after=cert.not_valid_after_utc,
                der_sha256=hashlib.sha256(der).hexdigest(),
                issuer=cert.issuer.rfc4514_string(),
                der=der,
            )
        )
    return tuple(out)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _section(raw: Mapping[str, Any], *keys: str) -> Any:
    node: Any = raw
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def registry_view(
    raw: Mapping[str, Any],
    source: str,
    bundle: tuple[CertInfo, ...] | None,
    bundle_problem: str | None,
) -> RegistryView:
    auth = _mapping(raw.get("auth"))
    token = _mapping(auth.get("token"))
    kind = next(iter(auth), "none")
    storage = _mapping(raw.get("storage"))
    http = _mapping(raw.get("http"))
    return RegistryView(
        source=source,
        addr=str(http.get("addr", ":5000")),
        host=str(http["host"]) if http.get("host") else None,
        realm=token.get("realm"),
        service=token.get("service"),
        issuer=token.get("issuer"),
        bundle_path=token.get("rootcertbundle"),
        bundle=bundle,
        bundle_problem=bundle_problem,
        redis=_registry_redis(raw.get("redis")),
        storage=storage_identity(storage),
        auth_kind=str(kind),
    )


def _validated(model: type[BaseModel], data: Any, key: str, problems: list[str]) -> Any:
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(f"{key}.{p}" for p in validation_problems(exc))
        return None


def auth_view(raw: Mapping[str, Any], source: str, keys: Sequence[KeyView] = ()) -> AuthView:
    """``keys``: the certificates of ``token.keys``, read by the caller (signer first)."""
    problems: list[str] = []
    token = _validated(TokenSettings, raw.get("token"), "token", problems)
    cache = _validated(CacheSettings, raw.get("cache", {}), "cache", problems)
    server = _validated(ServerSettings, raw.get("server", {}), "server", problems)
    server = server if isinstance(server, ServerSettings) else ServerSettings()
    cache = cache if isinstance(cache, CacheSettings) else CacheSettings()
    raw_token = _mapping(raw.get("token"))
    redis = None
    if cache.redis_url is not None:
        redis = parse_redis_url(cache.redis_url.get_secret_value())
    return AuthView(
        source=source,
        issuer=token.issuer if token is not None else raw_token.get("issuer"),
        service=token.service if token is not None else raw_token.get("service"),
        bind=server.bind,
        keys=tuple(keys),
        redis=redis,
        cache_enabled=cache.enabled,
        worker_class=server.worker_class,
        workers=server.workers,
        threads=server.threads,
        trusted_proxies=server.trusted_proxies,
        problems=tuple(problems),
    )


def key_cert_paths(raw: Mapping[str, Any]) -> list[str]:
    """``token.keys[*].cert`` as written, signer first."""
    keys = _section(raw, "token", "keys")
    if not isinstance(keys, list):
        return []
    return [str(k["cert"]) for k in keys if isinstance(k, dict) and k.get("cert")]


# ------------------------------------------------------------------------------ nginx


def _listen_addrs(server: Directive) -> list[tuple[str, bool]]:
    """``(host:port, ssl)`` per ``listen``; a bare port listens on every address."""
    out = []
    for listen in find_all(server.block or (), "listen"):
        if not listen.args:
            continue
        addr = listen.args[0]
        if addr.isdigit():
            addr = f"0.0.0.0:{addr}"
        out.append((addr, "ssl" in listen.args[1:]))
    return out or [("0.0.0.0:80", False)]


def _listen(server: Directive) -> str:
    return ", ".join(f"{addr}{' ssl' if ssl else ''}" for addr, ssl in _listen_addrs(server))


def _upstreams(http: Directive) -> dict[str, tuple[tuple[str, ...], bool]]:
    found: dict[str, tuple[tuple[str, ...], bool]] = {}
    for block in find_all(http.block or (), "upstream"):
        if not block.args:
            continue
        servers = tuple(d.args[0] for d in find_all(block.block or (), "server") if d.args)
        keepalive = find(block.block or (), "keepalive") is not None
        found[block.args[0]] = (servers, keepalive)
    return found


def _route(
    server: Directive,
    kind: str,
    uri: str,
    upstreams: Mapping[str, tuple[tuple[str, ...], bool]],
    top: Sequence[Directive],
) -> Route | None:
    location = select_location(server, uri)
    if location is None:
        return None
    proxy_pass = find(location.block or (), "proxy_pass")  # not inherited
    if proxy_pass is None or not proxy_pass.args:
        return None
    target = proxy_pass.args[0].split("://", 1)[-1].split("/", 1)[0]
    servers, keepalive = upstreams.get(target, ((target,), False))
    settings = {name: effective(location, name, top) for name in ROUTE_SETTINGS}
    return Route(
        server=_listen(server),
        kind=kind,
        location=" ".join(location.args),
        upstream=target,
        servers=servers,
        keepalive=keepalive and settings["proxy_http_version"] == "1.1",
        settings=settings,
    )


def nginx_view(top: Sequence[Directive], source: str) -> NginxView:
    events = find(top, "events")
    connections = effective(events, "worker_connections") if events else "512"
    routes: list[Route] = []
    listens: list[tuple[str, bool]] = []
    for http in find_all(top, "http"):
        upstreams = _upstreams(http)
        for server in find_all(http.block or (), "server"):
            server_routes = [
                route
                for kind, uri in BLOB_URIS.items()
                if (route := _route(server, kind, uri, upstreams, top)) is not None
            ]
            routes.extend(server_routes)
            if any(r.kind != "token" for r in server_routes):
                listens.extend(_listen_addrs(server))
    worker_processes = find(top, "worker_processes")
    return NginxView(
        source=source,
        worker_processes=" ".join(worker_processes.args) if worker_processes else "1",
        worker_connections=int(connections) if connections.isdigit() else 512,
        listens=tuple(listens),
        routes=tuple(routes),
    )

"""What the doctor knows about a deployment, as plain data, and what it finds. Pure.

:mod:`.inputs` fills a :class:`Snapshot` from files (and :mod:`.probes` from the network);
the rules (:mod:`.rules`) and the topology (:mod:`.topology`) only ever read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "AuthView",
    "CertInfo",
    "ClockReading",
    "Finding",
    "KeyView",
    "NginxView",
    "RealmProbe",
    "RedisRef",
    "RegistryView",
    "Report",
    "Route",
    "Severity",
    "Snapshot",
    "tier_label",
]

Severity = Literal["error", "warning"]


def tier_label(kind: str, source: str, count: int) -> str:
    """``registry``, or ``registry (path)`` when several configs of that tier are examined."""
    return kind if count == 1 else f"{kind} ({source})"


@dataclass(frozen=True)
class Finding:
    id: str
    """Stable, for scripts and tests: ``issuer-mismatch``, ``redis-mismatch``, ..."""
    severity: Severity
    tier: str
    message: str
    fix: str
    """One line: what to change, where."""

    def as_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "severity": self.severity,
            "tier": self.tier,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class RedisRef:
    """One Redis as a tier names it. ``instance`` identifies the server, ``db`` the database."""

    host: str
    port: int
    db: int
    scheme: str = "redis"

    @property
    def instance(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.host}"
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.instance} db {self.db}"


@dataclass(frozen=True)
class CertInfo:
    subject: str
    spki_sha256: str
    """SHA-256 of the SubjectPublicKeyInfo: equal keys, whatever certificate carries them."""
    not_after: datetime
    der_sha256: str
    issuer: str
    der: bytes = field(repr=False, compare=False, default=b"")


@dataclass(frozen=True)
class KeyView:
    """One of the token service's ``token.keys``; the first one signs."""

    cert_path: str
    chain: tuple[CertInfo, ...] | None
    problem: str | None = None
    """Why ``chain`` is None (file missing here, not PEM...)."""


@dataclass(frozen=True)
class RegistryView:
    source: str
    addr: str
    host: str | None
    realm: str | None
    service: str | None
    issuer: str | None
    bundle_path: str | None
    bundle: tuple[CertInfo, ...] | None
    bundle_problem: str | None
    redis: RedisRef | None
    storage: tuple[str, str]
    auth_kind: str
    """``token`` (what keelhaul expects), ``htpasswd``, ``silly`` or ``none``."""


@dataclass(frozen=True)
class AuthView:
    source: str
    issuer: str | None
    service: str | None
    bind: str
    keys: tuple[KeyView, ...]
    redis: RedisRef | None
    cache_enabled: bool
    worker_class: str
    workers: int | None
    threads: int
    trusted_proxies: int
    problems: tuple[str, ...] = ()
    """Sections that did not validate against the token service's schema."""


@dataclass(frozen=True)
class Route:
    """How one nginx server block handles one kind of request."""

    server: str
    """``listen`` of the server block, e.g. ``127.0.0.1:8080 ssl``."""
    kind: str
    """``upload`` (PATCH/PUT of a blob), ``download`` (GET of a blob), ``token``."""
    location: str
    upstream: str | None
    """Where ``proxy_pass`` sends it: an upstream block's name or ``host:port``."""
    servers: tuple[str, ...]
    """The upstream's ``server`` addresses (one entry for a direct ``proxy_pass``)."""
    keepalive: bool
    settings: dict[str, str]
    """Effective values of the buffering, body-size and HTTP-version directives."""


@dataclass(frozen=True)
class NginxView:
    source: str
    worker_processes: str
    worker_connections: int
    listens: tuple[tuple[str, bool], ...]
    """``(host:port, ssl)`` of every server block that proxies ``/v2/``."""
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class RealmProbe:
    url: str
    status: int | None
    error: str | None


@dataclass(frozen=True)
class ClockReading:
    tier: str
    url: str
    offset: float | None
    """Seconds the tier's clock is ahead of this host's (its ``Date`` header); None: unknown."""
    detail: str = ""


@dataclass(frozen=True)
class Snapshot:
    registries: tuple[RegistryView, ...] = ()
    auths: tuple[AuthView, ...] = ()
    nginx: tuple[NginxView, ...] = ()
    stack_redis: RedisRef | None = None
    """The local stack's Redis (from ``stack.json``): the reference for every tier."""
    stack_redis_external: bool = False
    """That Redis is not the stack's own (``redis_url``): others may load it too."""
    cpus: int | None = None
    cpus_source: str = ""
    realm_probes: tuple[RealmProbe, ...] = ()
    clocks: tuple[ClockReading, ...] = ()
    probed: bool = True
    now: datetime | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    topology: dict[str, Any]
    notes: tuple[str, ...]
    sources: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [f.as_dict() for f in self.findings],
            "topology": self.topology,
            "notes": list(self.notes),
            "sources": self.sources,
        }

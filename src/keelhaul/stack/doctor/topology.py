"""Who talks to whom, on which address, with which settings: the doctor's picture. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keelhaul.stack.doctor.model import CertInfo, Snapshot
from keelhaul.stack.doctor.rules import trusting

__all__ = ["describe", "notes"]


def _cert(cert: CertInfo, now: datetime) -> dict[str, Any]:
    return {
        "subject": cert.subject,
        "not_after": cert.not_after.isoformat(),
        "days_left": (cert.not_after - now).days,
    }


def _edges(snap: Snapshot) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = []
    for n in snap.nginx:
        for addr, ssl in n.listens:
            edges.append(
                {"from": "client", "to": "nginx", "address": addr, "tls": ssl, "source": n.source}
            )
        seen = set()
        for route in n.routes:
            tier = "auth" if route.kind == "token" else "registry"
            key = (route.server, route.location, tier)
            if key in seen:
                continue
            seen.add(key)
            edges.append(
                {
                    "from": "nginx",
                    "to": tier,
                    "route": route.location,
                    "address": ", ".join(route.servers),
                    "keepalive": route.keepalive,
                    "source": n.source,
                }
            )
    for r in snap.registries:
        if r.realm:
            edges.append({"from": "client", "to": "auth", "route": "realm", "address": r.realm})
        if r.redis is not None:
            edges.append(
                {"from": "registry", "to": "redis", "address": r.redis.instance, "db": r.redis.db}
            )
    for a in snap.auths:
        if a.redis is not None:
            edges.append(
                {"from": "auth", "to": "redis", "address": a.redis.instance, "db": a.redis.db}
            )
    return edges


def _keys(snap: Snapshot, now: datetime) -> list[dict[str, Any]]:
    out = []
    for a in snap.auths:
        for index, key in enumerate(a.keys):
            entry: dict[str, Any] = {
                "auth": a.source,
                "cert": key.cert_path,
                "role": "signer" if index == 0 else "published",
            }
            if key.chain is None:
                entry["problem"] = key.problem
            else:
                entry.update(_cert(key.chain[0], now))
                entry["trusted_by"] = {
                    r.source: (
                        None
                        if r.bundle is None
                        else (root.subject if (root := trusting(key.chain, r.bundle)) else False)
                    )
                    for r in snap.registries
                }
            out.append(entry)
    return out


def describe(snap: Snapshot) -> dict[str, Any]:
    now = snap.now or datetime.now(UTC)
    registries = [
        {
            "source": r.source,
            "listen": r.addr,
            "host": r.host,
            "auth": r.auth_kind,
            "realm": r.realm,
            "service": r.service,
            "issuer": r.issuer,
            "rootcertbundle": r.bundle_path,
            "bundle": [_cert(c, now) for c in r.bundle or ()],
            "redis": str(r.redis) if r.redis else None,
            "storage": {"driver": r.storage[0], "where": r.storage[1]},
        }
        for r in snap.registries
    ]
    auths = [
        {
            "source": a.source,
            "listen": a.bind,
            "service": a.service,
            "issuer": a.issuer,
            "redis": str(a.redis) if a.redis else None,
            "credential_cache": a.cache_enabled,
            "workers": a.workers if a.workers is not None else "2 x CPU (default)",
            "worker_class": a.worker_class,
            "threads": a.threads,
            "trusted_proxies": a.trusted_proxies,
        }
        for a in snap.auths
    ]
    proxies = [
        {
            "source": n.source,
            "worker_processes": n.worker_processes,
            "worker_connections": n.worker_connections,
            "routes": [
                {"server": r.server, "kind": r.kind, "location": r.location, **r.settings}
                for r in n.routes
            ],
        }
        for n in snap.nginx
    ]
    return {
        "edges": _edges(snap),
        "registry": registries,
        "auth": auths,
        "nginx": proxies,
        "redis": {
            "stack": str(snap.stack_redis) if snap.stack_redis else None,
            "rule": "one instance (host:port) for every tier; databases may differ",
        },
        "keys": _keys(snap, now),
        "cpus": {"count": snap.cpus, "source": snap.cpus_source or "unknown"},
        "clocks": [
            {"tier": c.tier, "url": c.url, "offset_s": c.offset, "detail": c.detail}
            for c in snap.clocks
        ],
        "realm_probes": [
            {"url": p.url, "status": p.status, "error": p.error} for p in snap.realm_probes
        ],
    }


def notes(snap: Snapshot) -> list[str]:
    """What the doctor could not check, and why."""
    out = list(snap.notes)
    if snap.cpus is None:
        numeric = [a.source for a in snap.auths if a.workers is not None]
        numeric += [n.source for n in snap.nginx if n.worker_processes.isdigit()]
        if numeric:
            out.append("worker counts not compared with cores: unknown here; pass --cpus N")
    if not snap.probed:
        out.append("live checks skipped (--no-probe): realm reachability and clock skew")
    for clock in snap.clocks:
        if clock.offset is None:
            tier = "token service" if clock.tier == "auth" else clock.tier
            out.append(f"clock of the {tier} not measured: {clock.detail}")
    for a in snap.auths:
        for key in a.keys:
            if key.chain is None:
                out.append(f"{key.cert_path} not checked against the bundle: {key.problem}")
    for r in snap.registries:
        if r.bundle is None and r.bundle_problem and r.bundle_problem.startswith("not found"):
            out.append(f"the registry's bundle {r.bundle_path} not checked: {r.bundle_problem}")
    return out

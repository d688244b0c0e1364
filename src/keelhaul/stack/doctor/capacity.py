"""Will the stack keep up: gunicorn's and nginx's workers against the cores, the
credential cache, and how nginx proxies blobs and tokens. Pure."""

from __future__ import annotations

from collections.abc import Iterator

from keelhaul.stack.doctor.model import AuthView, Finding, NginxView, Snapshot, tier_label

__all__ = ["MIN_PROXY_CONNECTIONS", "credential_cache", "proxy", "workers"]

MIN_PROXY_CONNECTIONS = 1024


def _auth_label(snap: Snapshot, a: AuthView) -> str:
    return tier_label("token service", a.source, len(snap.auths))


def workers(snap: Snapshot) -> Iterator[Finding]:
    cpus = snap.cpus
    for a in snap.auths:
        blocking = a.worker_class == "sync" or (a.worker_class == "gthread" and a.threads < 2)
        if blocking:
            how = "sync" if a.worker_class == "sync" else "gthread with 1 thread"
            yield Finding(
                "auth-worker-class-blocking", "warning", "auth",
                f"the {_auth_label(snap, a)} runs gunicorn {how} workers: one request at a "
                "time per worker, and a slow bcrypt or Redis call blocks all others",
                f"set server.worker_class: gevent in {a.source}",
            )  # fmt: skip
        if a.workers is not None and cpus is not None and a.workers < cpus:
            yield Finding(
                "auth-workers-below-cores", "warning", "auth",
                f"the {_auth_label(snap, a)} runs {a.workers} worker(s) on {cpus} cores "
                f"({snap.cpus_source}): bcrypt and signing are CPU-bound, cores stay idle",
                f"set server.workers to at least {cpus} (default: 2 x cores) in {a.source}",
            )  # fmt: skip
    for n in snap.nginx:
        if n.worker_processes.isdigit() and cpus is not None and int(n.worker_processes) < cpus:
            yield Finding(
                "proxy-workers-below-cores", "warning", "nginx",
                f"nginx runs {n.worker_processes} worker process(es) on {cpus} cores "
                f"({snap.cpus_source}): the proxy saturates before the registry does",
                f"set worker_processes auto; in {n.source}",
            )  # fmt: skip
        if n.worker_connections < MIN_PROXY_CONNECTIONS:
            yield Finding(
                "proxy-connections-low", "warning", "nginx",
                f"nginx allows {n.worker_connections} connections per worker, each proxied "
                f"request holding two: at {n.worker_connections // 2} concurrent requests "
                "per worker new clients wait",
                f"set worker_connections 4096; in the events block of {n.source}",
            )  # fmt: skip


def credential_cache(snap: Snapshot) -> Iterator[Finding]:
    for a in snap.auths:
        if not a.cache_enabled:
            yield Finding(
                "credential-cache-off", "warning", "auth",
                f"the {_auth_label(snap, a)} verifies bcrypt on every token request "
                "(cache.enabled: false): about 30 tokens/s per core at cost 10",
                f"set cache.enabled: true in {a.source}",
            )  # fmt: skip


def _proxy_findings(snap: Snapshot, n: NginxView) -> Iterator[Finding]:
    blob_routes = [r for r in n.routes if r.kind in ("upload", "download")]
    if not blob_routes:
        yield Finding(
            "proxy-no-registry-route", "error", "nginx",
            f"no server in {n.source} proxies /v2/ blob requests",
            "add location /v2/ { proxy_pass http://registry; ... } to the entry server",
        )  # fmt: skip
        return
    buffered = []
    for route in blob_routes:
        directive = "proxy_request_buffering" if route.kind == "upload" else "proxy_buffering"
        if route.settings[directive] == "on":
            buffered.append(f"{directive} on for {route.kind}s (location {route.location})")
        if route.kind == "upload" and route.settings["client_max_body_size"] != "0":
            yield Finding(
                "proxy-body-limit", "error", "nginx",
                f"client_max_body_size is {route.settings['client_max_body_size']} for blob "
                f"uploads (location {route.location} in {n.source}): larger layers get 413",
                f"set client_max_body_size 0; in that location of {n.source}",
            )  # fmt: skip
    if buffered:
        yield Finding(
            "proxy-buffering-on", "warning", "nginx",
            f"{'; '.join(dict.fromkeys(buffered))} in {n.source}: layers are spooled to "
            "nginx's temp directory and a push waits for the whole body",
            f"set proxy_request_buffering off; and proxy_buffering off; in location /v2/ "
            f"of {n.source}",
        )  # fmt: skip
    no_keepalive = sorted({r.upstream or "?" for r in n.routes if not r.keepalive})
    if no_keepalive:
        yield Finding(
            "proxy-no-keepalive", "warning", "nginx",
            f"nginx opens a new connection per request to {', '.join(no_keepalive)} "
            f"({n.source})",
            "add keepalive 64; to the upstream block and proxy_http_version 1.1; "
            'proxy_set_header Connection ""; to the locations',
        )  # fmt: skip


def _port(addr: str) -> str:
    return addr.rpartition(":")[2] if ":" in addr else "80"


def proxy(snap: Snapshot) -> Iterator[Finding]:
    for n in snap.nginx:
        yield from _proxy_findings(snap, n)
        targets = [("upload", "registry", [r.addr for r in snap.registries])]
        targets.append(("token", "token service", [a.bind for a in snap.auths]))
        for kind, tier, addrs in targets:
            route = next((r for r in n.routes if r.kind == kind), None)
            if route is None or not addrs:
                continue
            ports = {_port(a) for a in addrs}
            if not {_port(s) for s in route.servers} & ports:
                yield Finding(
                    "proxy-upstream-mismatch", "error", "nginx",
                    f"nginx sends {kind} requests to {', '.join(route.servers)}, but the "
                    f"{tier} listens on {', '.join(addrs)}",
                    f"point the upstream {route.upstream} in {n.source} at the {tier}",
                )  # fmt: skip
    if snap.nginx:
        for a in snap.auths:
            if a.trusted_proxies == 0:
                yield Finding(
                    "auth-proxy-trust", "warning", "auth",
                    f"behind nginx the {_auth_label(snap, a)} trusts no X-Forwarded-For hop: "
                    "it sees the proxy's address for every client, so audit lines and the "
                    "per-IP throttle lump all clients together",
                    f"set server.trusted_proxies: 1 in {a.source} (and keep it reachable "
                    "only through the proxy)",
                )  # fmt: skip

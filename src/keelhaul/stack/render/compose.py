"""``compose.yaml``: nginx, registry, token service, Redis; one service per container. Pure.

With an external Redis (``redis_url``) there is no Redis service: the registry's and the
token service's configs name it, and its password (if any) is in their ``env_file``s.

Files sit next to it as the writer lays them out (:data:`COMPOSE_FILES`); every
container runs as non-root with a read-only root file system. Only nginx publishes a
port; the others share an internal network (the registry also joins the outer one when
its storage is an object store).

The file is accepted by both docker compose v2 and Debian's docker-compose 1.29 (so no
top-level ``name:``). One limit of plain compose: nginx resolves ``registry`` and ``auth``
when it starts, so after re-creating either container, restart nginx too
(``docker compose restart nginx``).
"""

from __future__ import annotations

from typing import Any

import yaml

from keelhaul.stack.authconf import auth_args
from keelhaul.stack.plan import StackPlan
from keelhaul.stack.redisconf import redis_argv
from keelhaul.stack.render.material import (
    AUTH_CONFIG_ENV,
    AUTH_UID,
    METRICS_DIR,
    NGINX_UID,
    REDIS_UID,
    REGISTRY_UID,
)
from keelhaul.stack.render.monitoring import compose_services
from keelhaul.stack.render.settings import DeploySettings

__all__ = ["COMPOSE_FILES", "REGISTRY_DATA_INIT", "compose_yaml", "render_compose"]

REGISTRY_DATA_INIT = "registry-data-init"
"""The one-shot service that makes a fresh registry volume writable (filesystem storage)."""

COMPOSE_FILES = {
    "registry.yml": "config/registry.yml",
    "auth.yml": "config/auth.yml",
    "nginx.conf": "config/nginx.conf",
    "bundle.pem": "config/bundle.pem",
    "htpasswd": "secrets/htpasswd",
    "auth.env": "secrets/auth.env",
    "registry.env": "secrets/registry.env",
    "token.key": "secrets/token.key",
    "token.crt": "secrets/token.crt",
    "tls.crt": "secrets/tls.crt",
    "tls.key": "secrets/tls.key",
}
"""Artifact -> its path relative to ``compose.yaml``."""


def _mount(artifact: str, target: str) -> str:
    return f"./{COMPOSE_FILES[artifact]}:{target}:ro"


def _wget(url: str) -> list[str]:
    return ["CMD", "wget", "-q", "-O", "/dev/null", url]


def _health(test: list[str]) -> dict[str, Any]:
    """Every 5 s: compose starts a service only once those it depends on are healthy, and
    Docker 20.10 runs the first check one interval after the start (no ``start_interval``),
    so the chain Redis -> registry and token service -> nginx waits about three intervals
    (the compose e2e: 100 s with 10 s, 70 s with 5 s). Every probe is a small process
    (wget, or bash for the token service), a few CPU-ms each."""
    return {"test": test, "interval": "5s", "timeout": "3s", "retries": 5, "start_period": "10s"}


def _auth_healthcheck(plan: StackPlan) -> list[str]:
    """``GET /healthz`` answered 200, with bash's own ``/dev/tcp`` and builtins: the image
    has no wget or curl, and a Python start would cost ~0.1 CPU-s a probe (measured here;
    the Dockerfile's own HEALTHCHECK, every 10 s, for ``docker run`` alone, still uses it)."""
    port = plan.ports["auth"]
    probe = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && "
        'printf "GET /healthz HTTP/1.0\\r\\n\\r\\n" >&3 && '
        'read -r -t 3 status <&3 && [[ "$$status" == *" 200 "* ]]'
    )  # $$: compose substitutes $name from the environment; $$ is one $ for bash
    return ["CMD", "bash", "-c", probe]


def _registry_data_init(image: str, data: str) -> dict[str, Any]:
    """A one-shot service that hands the registry's data volume to its non-root user.

    A fresh named volume copies the ownership of the image's directory, and the official
    ``registry`` image declares ``VOLUME /var/lib/registry`` as root's with no ``USER``: run as
    uid 1000 (as here), the registry could not write a byte. Kubernetes has ``fsGroup`` for
    this; compose has nothing, so this container (same image, root, only ``CAP_CHOWN``, no
    network) chowns the volume's top directory and exits; the registry waits for it. Not
    recursive, so it stays instant on a large store: a store written earlier by a registry
    running as root needs one ``chown -R`` (the README's deployment section)."""
    return {
        "image": image,
        "entrypoint": ["chown", f"{REGISTRY_UID}:{REGISTRY_UID}", data],
        "command": [],
        "user": "0:0",
        "volumes": [f"registry-data:{data}"],
        "read_only": True,
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "cap_add": ["CHOWN"],
        "restart": "no",
    }


def render_compose(plan: StackPlan, deploy: DeploySettings) -> dict[str, Any]:
    files = plan.files
    images = deploy.images
    cpus = str(deploy.cpus)

    def depends_redis() -> dict[str, Any]:  # a fresh dict each: no YAML anchors
        return {"redis": {"condition": "service_healthy"}} if plan.settings.own_redis else {}

    services: dict[str, Any] = {}
    if plan.settings.own_redis:  # an external redis_url: no service, its address in the configs
        services["redis"] = {
            "image": images.redis,
            "command": redis_argv("redis-server", plan),
            "user": f"{REDIS_UID}:{REDIS_UID}",
            # its working directory, like the Kubernetes emptyDir (and no anonymous volume
            # for the official image's VOLUME /data)
            "tmpfs": ["/data"],
            "read_only": True,
            "networks": ["backend"],
            "healthcheck": _health(["CMD", "redis-cli", "ping"]),
            "cpus": "1",
            "mem_limit": "512m",
            "restart": "unless-stopped",
        }
    services["auth"] = {
        "image": images.auth,
        "environment": {
            AUTH_CONFIG_ENV: files.auth_config,
            "PROMETHEUS_MULTIPROC_DIR": METRICS_DIR,
        },
        "env_file": [COMPOSE_FILES["auth.env"]],
        "volumes": [
            _mount("auth.yml", files.auth_config),
            _mount("htpasswd", files.htpasswd),
            _mount("token.key", files.signing_key),
            _mount("token.crt", files.signing_cert),
        ],
        # a tmpfs is root's 0755 unless told: the non-root workers write their metric files
        "tmpfs": ["/tmp", f"{METRICS_DIR}:uid={AUTH_UID},gid={AUTH_UID},mode=0700"],  # noqa: S108
        "read_only": True,
        "networks": ["backend"],
        "depends_on": depends_redis(),
        "healthcheck": _health(_auth_healthcheck(plan)),
        "cpus": cpus,
        "mem_limit": "1g",
        "restart": "unless-stopped",
    }
    registry_volumes = [
        _mount("registry.yml", files.registry_config),
        _mount("bundle.pem", files.bundle),
    ]
    if plan.storage.driver == "filesystem":
        registry_volumes.append(f"registry-data:{files.registry_data}")
    registry_networks = ["backend"] if plan.storage.driver == "filesystem" else ["backend", "edge"]
    registry_depends = depends_redis()
    if plan.storage.driver == "filesystem":
        services[REGISTRY_DATA_INIT] = _registry_data_init(images.registry, files.registry_data)
        registry_depends[REGISTRY_DATA_INIT] = {"condition": "service_completed_successfully"}
    services["registry"] = {
        "image": images.registry,
        "user": f"{REGISTRY_UID}:{REGISTRY_UID}",
        "env_file": [COMPOSE_FILES["registry.env"]],
        "volumes": registry_volumes,
        "read_only": True,
        "networks": registry_networks,
        "depends_on": registry_depends,
        "healthcheck": _health(
            _wget(f"http://127.0.0.1:{plan.ports['registry_debug']}/debug/health")
        ),
        "cpus": cpus,
        "mem_limit": "1g",
        "restart": "unless-stopped",
    }
    published = f"{deploy.publish_address}:" if deploy.publish_address else ""
    nginx_volumes = [_mount("nginx.conf", files.nginx_config)]
    if plan.settings.tls:
        nginx_volumes += [_mount("tls.crt", files.tls_cert), _mount("tls.key", files.tls_key)]
    services["nginx"] = {
        "image": images.nginx,
        "command": ["nginx", "-c", files.nginx_config, "-g", "daemon off;"],
        "user": f"{NGINX_UID}:{NGINX_UID}",
        "volumes": nginx_volumes,
        "tmpfs": [files.nginx_temp],
        "read_only": True,
        "ports": [f"{published}{deploy.public_port}:{plan.ports['nginx']}"],
        "networks": ["backend", "edge"],
        "depends_on": {
            "registry": {"condition": "service_healthy"},
            "auth": {"condition": "service_healthy"},
        },
        # the loopback status page: plain http even when the entry is https
        "healthcheck": _health(
            _wget(f"http://127.0.0.1:{plan.ports['nginx_status']}/nginx_status")
        ),
        "cpus": cpus,
        "mem_limit": "256m",
        "restart": "unless-stopped",
    }
    if plan.settings.monitoring:
        # the process-exporter's auth group knows the token service by this command line
        services["auth"]["command"] = ["keelhaul", *auth_args(plan)]
        services.update(compose_services(plan, deploy))
    for service in services.values():
        if not service.get("depends_on", True):
            del service["depends_on"]
    # no top-level `name:`: docker-compose 1.x (Debian's) rejects it; the project name comes
    # from `-p` (or the directory), see the header
    document: dict[str, Any] = {"services": services}
    volumes: dict[str, Any] = {}
    if plan.storage.driver == "filesystem":
        volumes["registry-data"] = {}
    if plan.settings.monitoring:
        volumes["prometheus-data"] = {}
    if volumes:
        document["volumes"] = volumes
    document["networks"] = {"backend": {"internal": True}, "edge": {}}
    return document


def compose_yaml(document: dict[str, Any]) -> str:
    header = (
        "# keelhaul reference stack for docker compose; rendered by `keelhaul stack render`.\n"
        "# Build the token service image first: docker build -f deploy/auth.Dockerfile -t "
        f"{document['services']['auth']['image']} .\n"
        "# Start: docker compose -p keelhaul up -d   (docker-compose 1.x: docker-compose -p ...)\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)

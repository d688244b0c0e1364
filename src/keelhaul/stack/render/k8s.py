"""Kubernetes manifests: one Deployment per tier, probes, limits, an HPA for the token
service, keys in Secrets, configs in ConfigMaps. Pure.

Two choices worth knowing:

* ``enableServiceLinks: false`` on every pod: a Service named ``registry`` would otherwise
  inject ``REGISTRY_PORT=tcp://...`` into every pod, and the registry reads any
  ``REGISTRY_*`` variable as configuration (it refuses to start on that one).
* Probes never rely on ``/v2/`` (401 without a token is not "ready" to an httpGet probe):
  the registry is ready when its debug ``/debug/health`` says so (storage included) and
  alive while it accepts TCP; the token service has ``/healthz``; nginx answers
  ``/healthz`` itself; Redis answers ``redis-cli ping``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from keelhaul.stack.plan import StackPlan
from keelhaul.stack.redisconf import redis_argv
from keelhaul.stack.render.k8s_objects import (
    base,
    config_volume,
    deployment,
    dir_of,
    http_probe,
    meta,
    policy,
    resources,
    secret_env,
    secret_volume,
    security,
    service,
    tcp_probe,
)
from keelhaul.stack.render.material import (
    AUTH_CONFIG_ENV,
    AUTH_REDIS_PASSWORD_ENV,
    AUTH_SECRET_ENV,
    AUTH_UID,
    METRICS_DIR,
    NGINX_UID,
    REDIS_UID,
    REGISTRY_REDIS_PASSWORD_ENV,
    REGISTRY_SECRET_ENV,
    REGISTRY_UID,
    Material,
)
from keelhaul.stack.render.monitoring import prometheus_peer, scrape_annotations, sidecar
from keelhaul.stack.render.settings import DeploySettings

__all__ = ["MANIFEST_FILES", "kustomization", "manifests_yaml", "render_manifests"]

# names of Secret objects, not secrets
SECRET_ENV = "keelhaul-env"  # noqa: S105
SECRET_KEYS = "keelhaul-keys"  # noqa: S105
SECRET_USERS = "keelhaul-users"  # noqa: S105
SECRET_TLS = "keelhaul-tls"  # noqa: S105
SECRET_STORAGE = "keelhaul-storage"  # noqa: S105
"""Optional, made by the operator: REGISTRY_STORAGE_S3_ACCESSKEY/_SECRETKEY (else IAM)."""

MANIFEST_FILES = (
    "secrets.yaml",
    "configmaps.yaml",
    "redis.yaml",
    "registry.yaml",
    "auth.yaml",
    "nginx.yaml",
    "networkpolicy.yaml",
)


def _secrets(plan: StackPlan, deploy: DeploySettings, material: Material) -> list[dict[str, Any]]:
    def secret(name: str, data: Mapping[str, str], kind: str = "Opaque") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta(name, deploy),
            "type": kind,
            "stringData": dict(data),
        }

    docs = [
        secret(SECRET_ENV, {**material.auth_env(), **material.registry_env()}),
        secret(SECRET_KEYS, {"token.key": material.token_key, "token.crt": material.token_cert}),
        secret(SECRET_USERS, {"htpasswd": material.htpasswd}),
    ]
    if plan.settings.tls and material.tls_cert and material.tls_key:
        docs.append(
            secret(
                SECRET_TLS,
                {"tls.crt": material.tls_cert, "tls.key": material.tls_key},
                "kubernetes.io/tls",
            )
        )
    return docs


def _configmaps(deploy: DeploySettings, configs: Mapping[str, str]) -> list[dict[str, Any]]:
    def config_map(name: str, data: Mapping[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(name, deploy),
            "data": dict(data),
        }

    return [
        config_map(
            "keelhaul-registry",
            {"config.yml": configs["registry.yml"], "bundle.pem": configs["bundle.pem"]},
        ),
        config_map("keelhaul-auth", {"auth.yml": configs["auth.yml"]}),
        config_map("keelhaul-nginx", {"nginx.conf": configs["nginx.conf"]}),
    ]


def _redis(plan: StackPlan, deploy: DeploySettings) -> list[dict[str, Any]]:
    port = plan.ports["redis"]
    container = {
        "name": "redis",
        "image": deploy.images.redis,
        "command": redis_argv("redis-server", plan),
        "ports": [{"name": "redis", "containerPort": port}],
        "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 5},
        "livenessProbe": tcp_probe(port),
        "resources": resources("100m", "128Mi", "1", "512Mi"),
        "securityContext": security(REDIS_UID),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    redis = deployment(
        "redis",
        deploy,
        container,
        replicas=1,
        fs_group=REDIS_UID,
        recreate=True,
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    if plan.settings.monitoring:
        _monitored(redis, plan.ports["redis_exporter"], sidecar(plan, deploy, "redis_exporter"))
    return [redis, service("redis", deploy, {"redis": port})]


def _registry(plan: StackPlan, deploy: DeploySettings) -> list[dict[str, Any]]:
    files = plan.files
    port, debug = plan.ports["registry"], plan.ports["registry_debug"]
    env = [secret_env(REGISTRY_SECRET_ENV, SECRET_ENV, REGISTRY_SECRET_ENV)]
    if plan.redis_password is not None:
        env.append(secret_env(REGISTRY_REDIS_PASSWORD_ENV, SECRET_ENV, REGISTRY_REDIS_PASSWORD_ENV))
    if plan.storage.driver == "s3":
        env += [
            secret_env(f"REGISTRY_STORAGE_S3_{key}", SECRET_STORAGE, key.lower(), optional=True)
            for key in ("ACCESSKEY", "SECRETKEY")
        ]
    mounts = [{"name": "config", "mountPath": dir_of(files.registry_config), "readOnly": True}]
    volumes = [
        config_volume(
            "config",
            "keelhaul-registry",
            {"config.yml": base(files.registry_config), "bundle.pem": base(files.bundle)},
        )
    ]
    filesystem = plan.storage.driver == "filesystem"
    docs: list[dict[str, Any]] = []
    if filesystem:
        mounts.append({"name": "data", "mountPath": files.registry_data})
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": "registry-data"}})
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": meta("registry-data", deploy, "registry"),
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": plan.storage.size}},
                },
            }
        )
    container = {
        "name": "registry",
        "image": deploy.images.registry,
        "args": ["serve", files.registry_config],
        "ports": [
            {"name": "http", "containerPort": port},
            {"name": "debug", "containerPort": debug},
        ],
        "env": env,
        "volumeMounts": mounts,
        "readinessProbe": http_probe("/debug/health", debug),
        "livenessProbe": tcp_probe(port),
        "resources": resources("250m", "256Mi", str(deploy.cpus), "1Gi"),
        "securityContext": security(REGISTRY_UID),
    }
    # one writer per ReadWriteOnce volume; object stores take any number of replicas
    registry = deployment(
        "registry",
        deploy,
        container,
        replicas=1 if filesystem else 2,
        volumes=volumes,
        fs_group=REGISTRY_UID,
        recreate=filesystem,
    )
    if plan.settings.monitoring:
        _monitored(registry, debug)
    docs.insert(0, registry)
    svc = service("registry", deploy, {"http": port, "debug": debug})
    svc["metadata"]["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(debug),
        "prometheus.io/path": "/metrics",
    }
    docs.append(svc)
    return docs


def _auth(plan: StackPlan, deploy: DeploySettings) -> list[dict[str, Any]]:
    files = plan.files
    port = plan.ports["auth"]
    low, high = deploy.auth_replicas
    container = {
        "name": "auth",
        "image": deploy.images.auth,
        "ports": [{"name": "http", "containerPort": port}],
        "env": [
            {"name": AUTH_CONFIG_ENV, "value": files.auth_config},
            {"name": "PROMETHEUS_MULTIPROC_DIR", "value": METRICS_DIR},
            secret_env(AUTH_SECRET_ENV, SECRET_ENV, AUTH_SECRET_ENV),
            *(
                [secret_env(AUTH_REDIS_PASSWORD_ENV, SECRET_ENV, AUTH_REDIS_PASSWORD_ENV)]
                if plan.redis_password is not None
                else []
            ),
        ],
        "volumeMounts": [
            {"name": "config", "mountPath": dir_of(files.auth_config), "readOnly": True},
            {"name": "users", "mountPath": dir_of(files.htpasswd), "readOnly": True},
            {"name": "keys", "mountPath": dir_of(files.signing_key), "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - gunicorn heartbeat files
            {"name": "metrics", "mountPath": METRICS_DIR},
        ],
        "readinessProbe": http_probe("/healthz", port, period=5),
        "livenessProbe": http_probe("/healthz", port, period=20),
        "resources": resources("500m", "256Mi", str(deploy.cpus), "1Gi"),
        "securityContext": security(AUTH_UID),
    }
    volumes = [
        config_volume("config", "keelhaul-auth", {"auth.yml": base(files.auth_config)}),
        secret_volume("users", SECRET_USERS, {"htpasswd": base(files.htpasswd)}),
        secret_volume(
            "keys",
            SECRET_KEYS,
            {"token.key": base(files.signing_key), "token.crt": base(files.signing_cert)},
        ),
        {"name": "tmp", "emptyDir": {"medium": "Memory"}},
        {"name": "metrics", "emptyDir": {"medium": "Memory"}},
    ]
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta("auth", deploy, "auth"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "auth"},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }
    auth = deployment("auth", deploy, container, replicas=None, volumes=volumes, fs_group=AUTH_UID)
    if plan.settings.monitoring:
        _monitored(auth, port)
    return [auth, service("auth", deploy, {"http": port}), hpa]


def _nginx(plan: StackPlan, deploy: DeploySettings) -> list[dict[str, Any]]:
    files = plan.files
    port = plan.ports["nginx"]
    scheme = "HTTPS" if plan.settings.tls else "HTTP"
    mounts = [
        {"name": "config", "mountPath": dir_of(files.nginx_config), "readOnly": True},
        {"name": "tmp", "mountPath": files.nginx_temp},
    ]
    volumes = [
        config_volume("config", "keelhaul-nginx", {"nginx.conf": base(files.nginx_config)}),
        {"name": "tmp", "emptyDir": {}},
    ]
    if plan.settings.tls:
        mounts.append({"name": "tls", "mountPath": dir_of(files.tls_cert), "readOnly": True})
        volumes.append(
            secret_volume(
                "tls",
                SECRET_TLS,
                {"tls.crt": base(files.tls_cert), "tls.key": base(files.tls_key)},
            )
        )
    container = {
        "name": "nginx",
        "image": deploy.images.nginx,
        "command": ["nginx", "-c", files.nginx_config, "-g", "daemon off;"],
        "ports": [{"name": "entry", "containerPort": port}],
        "volumeMounts": mounts,
        "readinessProbe": http_probe("/healthz", port, scheme=scheme, period=5),
        "livenessProbe": http_probe("/healthz", port, scheme=scheme, period=20),
        "resources": resources("250m", "64Mi", str(deploy.cpus), "256Mi"),
        "securityContext": security(NGINX_UID),
    }
    svc = service(
        "nginx",
        deploy,
        {"entry": deploy.public_port},
        kind="LoadBalancer",
        target={"entry": port},
    )
    nginx = deployment(
        "nginx",
        deploy,
        container,
        replicas=deploy.nginx_replicas,
        volumes=volumes,
        fs_group=NGINX_UID,
    )
    if plan.settings.monitoring:
        _monitored(nginx, plan.ports["nginx_exporter"], sidecar(plan, deploy, "nginx_exporter"))
    return [nginx, svc]


def _network_policies(plan: StackPlan, deploy: DeploySettings) -> list[dict[str, Any]]:
    """Only nginx reaches the registry's API and the token service (which trusts one
    X-Forwarded-For hop: a pod reaching it directly could claim any address); Redis has no
    password, so only the registry and the token service reach it. The registry's debug
    port (health, metrics) stays open inside the cluster for probes and Prometheus."""
    ports = plan.ports
    docs = [
        policy("auth-from-nginx", deploy, "auth", [(["nginx"], [ports["auth"]])]),
        policy(
            "registry-from-nginx",
            deploy,
            "registry",
            [(["nginx"], [ports["registry"]]), ([], [ports["registry_debug"]])],
        ),
    ]
    if plan.settings.own_redis:
        docs.append(
            policy("redis-clients", deploy, "redis", [(["registry", "auth"], [ports["redis"]])])
        )
    if plan.settings.monitoring:
        # Prometheus scrapes the token service's /metrics and the Redis exporter
        scraped = {"auth-from-nginx": ports["auth"], "redis-clients": ports.get("redis_exporter")}
        for doc in docs:
            port = scraped.get(doc["metadata"]["name"])
            if port is not None:
                doc["spec"]["ingress"].append(
                    {"from": [prometheus_peer()], "ports": [{"protocol": "TCP", "port": port}]}
                )
    return docs


def _monitored(
    deployment: dict[str, Any], port: int, exporter: dict[str, Any] | None = None
) -> None:
    """Scrape annotations on the pods (and the exporter beside the tier, if it needs one)."""
    template = deployment["spec"]["template"]
    template["metadata"]["annotations"] = scrape_annotations(port)
    if exporter is not None:
        template["spec"]["containers"].append(exporter)


def render_manifests(
    plan: StackPlan, deploy: DeploySettings, material: Material, configs: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """File name -> its documents (files with no document are left out)."""
    rendered = {
        "secrets.yaml": _secrets(plan, deploy, material),
        "configmaps.yaml": _configmaps(deploy, configs),
        "redis.yaml": _redis(plan, deploy) if plan.settings.own_redis else [],
        "registry.yaml": _registry(plan, deploy),
        "auth.yaml": _auth(plan, deploy),
        "nginx.yaml": _nginx(plan, deploy),
        "networkpolicy.yaml": _network_policies(plan, deploy),
    }
    return {name: docs for name, docs in rendered.items() if docs}


def manifests_yaml(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)


def kustomization(files: list[str], deploy: DeploySettings) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": files,
    }
    if deploy.namespace:
        doc["namespace"] = deploy.namespace
    return doc

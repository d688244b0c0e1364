"""Kubernetes object builders: metadata, probes, limits, volumes, Deployments, Services,
NetworkPolicies. Pure; :mod:`.k8s` puts the stack's manifests together from them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keelhaul.stack.render.settings import DeploySettings

__all__ = [
    "APP",
    "base",
    "config_volume",
    "deployment",
    "dir_of",
    "http_probe",
    "meta",
    "policy",
    "resources",
    "secret_env",
    "secret_volume",
    "security",
    "selector",
    "service",
    "tcp_probe",
]

APP = "keelhaul"


def meta(name: str, deploy: DeploySettings, tier: str | None = None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/part-of": APP}
    if tier is not None:
        labels["app.kubernetes.io/name"] = tier
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if deploy.namespace:
        meta["namespace"] = deploy.namespace
    return meta


def selector(tier: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": APP, "app.kubernetes.io/name": tier}


def resources(
    cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str
) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu_request, "memory": memory_request},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def http_probe(path: str, port: int, *, scheme: str = "HTTP", period: int = 10) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port, "scheme": scheme},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def tcp_probe(port: int) -> dict[str, Any]:
    return {"tcpSocket": {"port": port}, "periodSeconds": 20, "timeoutSeconds": 3}


def deployment(
    name: str,
    deploy: DeploySettings,
    container: dict[str, Any],
    *,
    replicas: int | None,
    volumes: list[dict[str, Any]],
    fs_group: int,
    recreate: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(name)},
        "template": {
            "metadata": {"labels": selector(name)},
            "spec": {
                "enableServiceLinks": False,
                "automountServiceAccountToken": False,
                "securityContext": {
                    "fsGroup": fs_group,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if replicas is not None:  # None: the HorizontalPodAutoscaler owns it
        spec["replicas"] = replicas
    if recreate:
        spec["strategy"] = {"type": "Recreate"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, deploy, name),
        "spec": spec,
    }


def service(
    name: str,
    deploy: DeploySettings,
    ports: Mapping[str, int],
    *,
    kind: str = "ClusterIP",
    target: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, deploy, name),
        "spec": {
            "type": kind,
            "selector": selector(name),
            "ports": [
                {
                    "name": port_name,
                    "port": port,
                    "targetPort": (target or ports)[port_name],
                    "protocol": "TCP",
                }
                for port_name, port in ports.items()
            ],
        },
    }


def config_volume(volume: str, config_map: str, items: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": volume,
        "configMap": {
            "name": config_map,
            "items": [{"key": k, "path": p} for k, p in items.items()],
        },
    }


def secret_volume(volume: str, secret: str, items: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": volume,
        "secret": {
            "secretName": secret,
            "defaultMode": 0o440,
            "items": [{"key": k, "path": p} for k, p in items.items()],
        },
    }


def dir_of(path: str) -> str:
    return path.rpartition("/")[0]


def base(path: str) -> str:
    return path.rpartition("/")[2]


def secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


# ------------------------------------------------------------------ one file per tier


def policy(
    name: str, deploy: DeploySettings, tier: str, rules: list[tuple[list[str], list[int]]]
) -> dict[str, Any]:
    """Ingress to ``tier`` only from the tiers named (``[]``: from anywhere) on those ports."""
    ingress = []
    for sources, ports in rules:
        rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": p} for p in ports]}
        if sources:
            rule["from"] = [{"podSelector": {"matchLabels": selector(s)}} for s in sources]
        ingress.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, deploy, tier),
        "spec": {
            "podSelector": {"matchLabels": selector(tier)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }

"""``stack render --monitoring``: the local stack's monitoring in compose and Kubernetes. Pure.

Compose runs the same Prometheus and exporters as ``stack up --monitoring``, as services
(peers by service name): process-exporter and node-exporter in the host's PID namespace,
the nginx exporter in nginx's network namespace (stub_status listens on loopback only).

Kubernetes clusters have their own Prometheus and take CPU from the kubelet's cAdvisor,
so the manifests only carry what a cluster lacks: the nginx and Redis exporters as
sidecars, ``prometheus.io/scrape|port|path`` annotations on every tier's pods, an ingress
rule letting Prometheus pods (label ``app.kubernetes.io/name: prometheus``, any namespace)
scrape the token service and the Redis exporter, a scrape config for the cluster's
Prometheus (``config/prometheus.yml``: annotated pods of the namespace with ``job`` = the
tier, plus cAdvisor), and the diagnosis' tier mapping (``tiers.yaml``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keelhaul.stack.monitoring import (
    EXPORTERS,
    PROMETHEUS,
    monitoring_yaml,
    process_exporter_config,
    process_tier_mapping,
    prometheus_args,
    prometheus_config,
    prometheus_global,
    stack_tiers,
)
from keelhaul.stack.plan import HOST, SERVICE_NAMES, StackPlan
from keelhaul.stack.render.k8s_objects import APP, resources, security
from keelhaul.stack.render.settings import DeploySettings

__all__ = [
    "COMPOSE_MONITORING_FILES",
    "PROMETHEUS_SELECTOR",
    "compose_services",
    "kube_prometheus_config",
    "kube_tier_mapping",
    "monitoring_files",
    "prometheus_peer",
    "scrape_annotations",
    "sidecar",
]

NOBODY = 65534
"""The exporters' and Prometheus' images run as nobody."""
COMPOSE_MONITORING_FILES = {
    "prometheus.yml": "config/prometheus.yml",
    "process-exporter.yml": "config/process-exporter.yml",
}
"""Artifact -> its path relative to ``compose.yaml`` (like ``compose.COMPOSE_FILES``)."""
TIERS_FILE = "tiers.yaml"
PROMETHEUS_SELECTOR = {"app.kubernetes.io/name": "prometheus"}
"""The label the Prometheus pods of kube-prometheus and the prometheus-community chart
carry: the NetworkPolicies let those pods scrape."""


def _args(plan: StackPlan, component: str) -> list[str]:
    (exporter,) = [e for e in EXPORTERS if e.component == component]
    return exporter.args(plan)


def _image(deploy: DeploySettings, component: str) -> str:
    image: str = getattr(deploy.monitoring_images, component)
    return image


# ------------------------------------------------------------------ compose


def compose_services(plan: StackPlan, deploy: DeploySettings) -> dict[str, Any]:
    """Prometheus and the exporters, with the scrape config of :func:`prometheus_config`."""
    user = f"{NOBODY}:{NOBODY}"
    services: dict[str, Any] = {
        SERVICE_NAMES[PROMETHEUS]: {
            "image": _image(deploy, PROMETHEUS),
            "command": prometheus_args(plan),
            "user": user,
            "volumes": [
                f"./{COMPOSE_MONITORING_FILES['prometheus.yml']}:{plan.files.prometheus_config}:ro",
                f"prometheus-data:{plan.files.prometheus_data}",
            ],
            "read_only": True,
            "networks": ["backend", "edge"],
            # the UI and API on the host's loopback only
            "ports": [f"{HOST}:{plan.ports[PROMETHEUS]}:{plan.ports[PROMETHEUS]}"],
            "healthcheck": _health(plan.ports[PROMETHEUS], "/-/ready"),
            "restart": "unless-stopped",
        },
        SERVICE_NAMES["node_exporter"]: {
            "image": _image(deploy, "node_exporter"),
            "command": _args(plan, "node_exporter"),
            "user": user,
            "pid": "host",  # /proc/stat, pressure, load: the host's
            "read_only": True,
            "networks": ["backend"],
            "healthcheck": _health(plan.ports["node_exporter"], "/metrics"),
            "restart": "unless-stopped",
        },
        SERVICE_NAMES["process_exporter"]: {
            "image": _image(deploy, "process_exporter"),
            "command": _args(plan, "process_exporter"),
            "pid": "host",  # sees the tiers' processes in their containers
            "volumes": [
                f"./{COMPOSE_MONITORING_FILES['process-exporter.yml']}:"
                f"{plan.files.process_exporter_config}:ro",
            ],
            "read_only": True,
            "networks": ["backend"],
            "restart": "unless-stopped",
        },
        "nginx-exporter": {
            "image": _image(deploy, "nginx_exporter"),
            "command": _args(plan, "nginx_exporter"),
            "user": user,
            # nginx's stub_status listens on its loopback: share its network namespace;
            # Prometheus reaches the exporter as nginx:<port>
            "network_mode": "service:nginx",
            "read_only": True,
            "depends_on": {"nginx": {"condition": "service_healthy"}},
            "restart": "unless-stopped",
        },
    }
    if "redis_exporter" in plan.ports:
        services[SERVICE_NAMES["redis_exporter"]] = {
            "image": _image(deploy, "redis_exporter"),
            "command": _args(plan, "redis_exporter"),
            "user": user,
            "read_only": True,
            "networks": ["backend"],
            "depends_on": {"redis": {"condition": "service_healthy"}},
            "restart": "unless-stopped",
        }
    return services


def _health(port: int, path: str) -> dict[str, Any]:
    """Prometheus' and node-exporter's images have busybox wget; the others are scratch
    images (Prometheus' own ``up`` tells whether they answer)."""
    return {
        "test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"],
        "interval": "10s",
        "timeout": "3s",
        "retries": 5,
        "start_period": "10s",
    }


# ------------------------------------------------------------------ Kubernetes


def scrape_annotations(port: int, path: str = "/metrics") -> dict[str, str]:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": path,
    }


def sidecar(plan: StackPlan, deploy: DeploySettings, component: str) -> dict[str, Any]:
    """An exporter beside its tier in the same pod: it reads the tier over loopback."""
    local = dataclasses.replace(plan, peers={**plan.peers, "redis": HOST})
    port = plan.ports[component]
    return {
        "name": component.replace("_", "-"),
        "image": _image(deploy, component),
        "args": _args(local, component),
        "ports": [{"name": "metrics", "containerPort": port}],
        "readinessProbe": {
            "httpGet": {"path": "/metrics", "port": port, "scheme": "HTTP"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
        },
        "resources": resources("10m", "16Mi", "200m", "64Mi"),
        "securityContext": security(NOBODY),
    }


def prometheus_peer() -> dict[str, Any]:
    """A NetworkPolicy peer: Prometheus pods in any namespace."""
    return {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(PROMETHEUS_SELECTOR)}}


def kube_prometheus_config(plan: StackPlan, deploy: DeploySettings) -> dict[str, Any]:
    """A scrape config for the cluster's Prometheus: the namespace's annotated pods (job =
    the tier), and the kubelets' cAdvisor through the API server (CPU, throttling)."""
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    kubelet_auth = {
        "scheme": "https",
        "tls_config": {"ca_file": f"{sa}/ca.crt"},
        "authorization": {"credentials_file": f"{sa}/token"},
    }
    return {
        "global": prometheus_global(),
        "scrape_configs": [
            {
                "job_name": f"{APP}-pods",
                "kubernetes_sd_configs": [_pod_discovery(deploy)],
                "relabel_configs": [
                    _keep("__meta_kubernetes_pod_annotation_prometheus_io_scrape", "true"),
                    _keep("__meta_kubernetes_pod_label_app_kubernetes_io_part_of", APP),
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                        "regex": "(.+)",
                        "target_label": "__metrics_path__",
                    },
                    {
                        "source_labels": [
                            "__address__",
                            "__meta_kubernetes_pod_annotation_prometheus_io_port",
                        ],
                        "regex": r"([^:]+)(?::\d+)?;(\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                    _copy("__meta_kubernetes_namespace", "namespace"),
                    _copy("__meta_kubernetes_pod_name", "pod"),
                    _copy("__meta_kubernetes_pod_label_app_kubernetes_io_name", "job"),
                ],
            },
            {
                "job_name": "kubernetes-cadvisor",
                **kubelet_auth,
                "kubernetes_sd_configs": [{"role": "node"}],
                "relabel_configs": [
                    # every node is reached through the API server: name the node, or all
                    # their targets share one instance label
                    _copy("__meta_kubernetes_node_name", "instance"),
                    {"target_label": "__address__", "replacement": "kubernetes.default.svc:443"},
                    {
                        "source_labels": ["__meta_kubernetes_node_name"],
                        "regex": "(.+)",
                        "target_label": "__metrics_path__",
                        "replacement": "/api/v1/nodes/$1/proxy/metrics/cadvisor",
                    },
                ],
            },
        ],
    }


def _pod_discovery(deploy: DeploySettings) -> dict[str, Any]:
    """The namespace's pods; without ``--namespace``, every namespace's (the keep rules
    still take only keelhaul's annotated pods)."""
    discovery: dict[str, Any] = {"role": "pod"}
    if deploy.namespace:
        discovery["namespaces"] = {"names": [deploy.namespace]}
    return discovery


def _keep(label: str, value: str) -> dict[str, Any]:
    return {"source_labels": [label], "action": "keep", "regex": value}


def _copy(label: str, target: str) -> dict[str, Any]:
    return {"source_labels": [label], "target_label": target}


def kube_tier_mapping(plan: StackPlan, deploy: DeploySettings) -> dict[str, Any]:
    """CPU from cAdvisor by namespace, container name (the tier's own container, not its
    exporter sidecar) and the Deployment's pods; metrics by the pods'
    ``app.kubernetes.io/name`` label, which both the rendered scrape config and the usual
    annotation-based ones copy. No node-exporter is rendered: ``host`` is empty."""
    ns = f'namespace="{deploy.namespace}",' if deploy.namespace else ""
    return {
        "version": 1,
        "cpu_source": "cadvisor",
        "host": "",
        "tiers": {
            tier: {
                "cpu": f'{ns}container="{tier}",pod=~"{tier}-.*"',
                "metrics": f'{ns}app_kubernetes_io_name="{tier}"',
            }
            for tier in stack_tiers(plan)
        },
    }


# ------------------------------------------------------------------ files


def monitoring_files(plan: StackPlan, deploy: DeploySettings) -> dict[str, str]:
    """Path relative to OUT -> text: the scrape config, the process groups (compose), and
    the tier mapping for ``keelhaul diagnose --prometheus URL --tiers OUT/tiers.yaml``."""
    if deploy.target == "compose":
        return {
            COMPOSE_MONITORING_FILES["prometheus.yml"]: monitoring_yaml(prometheus_config(plan)),
            COMPOSE_MONITORING_FILES["process-exporter.yml"]: monitoring_yaml(
                process_exporter_config(plan)
            ),
            TIERS_FILE: monitoring_yaml(process_tier_mapping(plan)),
        }
    return {
        "config/prometheus.yml": monitoring_yaml(kube_prometheus_config(plan, deploy)),
        TIERS_FILE: monitoring_yaml(kube_tier_mapping(plan, deploy)),
    }

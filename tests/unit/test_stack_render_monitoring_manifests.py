"""``stack render --monitoring``: compose services, Kubernetes annotations and sidecars, the
scrape configs and the tier mapping, cross-checked against each other."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from keelhaul.stack.plan import CONTAINER_PORTS, StackPlan
from keelhaul.stack.render import DeploySettings, plan_for
from keelhaul.stack.render.compose import REGISTRY_DATA_INIT, compose_yaml, render_compose
from keelhaul.stack.render.k8s import render_manifests
from keelhaul.stack.render.material import Material, config_files
from keelhaul.stack.render.monitoring import monitoring_files
from keelhaul.stack.settings import StackSettings

pytestmark = pytest.mark.unit

K8S_VERSION = "1.30"
MATERIAL = Material(
    token_key="-----BEGIN PRIVATE KEY-----\n...\n",
    token_cert="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    htpasswd="admin:$2b$04$x\n",
    auth_secret="a" * 48,
    registry_secret="r" * 32,
)
TIERS = ["nginx", "auth", "registry", "redis"]


def _plan(target: str, **knobs: Any) -> tuple[StackPlan, DeploySettings]:
    raw: dict[str, Any] = {"target": target, "namespace": "keelhaul"}
    if knobs.get("tls"):
        raw["public_url"] = "https://registry.example.com"
    deploy = DeploySettings.model_validate(raw)
    settings = StackSettings.model_validate({"monitoring": True, **knobs})
    return plan_for(settings, deploy), deploy


def _manifests(**knobs: Any) -> list[dict[str, Any]]:
    plan, deploy = _plan("k8s", **knobs)
    rendered = render_manifests(plan, deploy, MATERIAL, config_files(plan, MATERIAL))
    return [doc for docs in rendered.values() for doc in docs]


def _pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"] for d in docs if d["kind"] == "Deployment"}


def _compose(**knobs: Any) -> dict[str, Any]:
    plan, deploy = _plan("compose", **knobs)
    document = yaml.safe_load(compose_yaml(render_compose(plan, deploy)))
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("knobs", [{}, {"redis": False}, {"tls": True}])
def test_monitored_manifests_validate_against_the_kubernetes_schemas(knobs: dict[str, Any]) -> None:
    docs = _manifests(**knobs)
    # no CRD object (ServiceMonitor...): every document is a core or apps object
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_tier_pod_is_annotated_for_scraping_on_a_port_it_has() -> None:
    pods = _pods(_manifests())
    assert set(pods) == set(TIERS)
    for name, pod in pods.items():
        notes = pod["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true"
        assert notes["prometheus.io/path"] == "/metrics"
        ports = [p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]]
        assert int(notes["prometheus.io/port"]) in ports, name
    # the tiers without metrics of their own carry their exporter beside them
    assert [c["name"] for c in pods["nginx"]["spec"]["containers"]] == ["nginx", "nginx-exporter"]
    assert [c["name"] for c in pods["redis"]["spec"]["containers"]] == ["redis", "redis-exporter"]
    nginx_exporter = pods["nginx"]["spec"]["containers"][1]
    status = f"http://127.0.0.1:{CONTAINER_PORTS['nginx_status']}/nginx_status"
    assert f"-nginx.scrape-uri={status}" in nginx_exporter["args"]
    redis_exporter = pods["redis"]["spec"]["containers"][1]
    assert f"-redis.addr=redis://127.0.0.1:{CONTAINER_PORTS['redis']}" in redis_exporter["args"]
    for exporter in (nginx_exporter, redis_exporter):
        assert exporter["securityContext"]["runAsNonRoot"] is True
        assert set(exporter["resources"]) == {"requests", "limits"}


def test_network_policies_let_prometheus_scrape_and_nobody_else() -> None:
    docs = _manifests()
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    prometheus = {"app.kubernetes.io/name": "prometheus"}

    def scrape_ports(name: str) -> list[int]:
        return [
            port["port"]
            for rule in policies[name]["spec"]["ingress"]
            for peer in rule.get("from", [])
            if peer.get("podSelector", {}).get("matchLabels") == prometheus
            and peer.get("namespaceSelector") == {}
            for port in rule["ports"]
        ]

    assert scrape_ports("auth-from-nginx") == [CONTAINER_PORTS["auth"]]
    assert scrape_ports("redis-clients") == [CONTAINER_PORTS["redis_exporter"]]
    # Redis itself stays closed to Prometheus (it has no password)
    assert CONTAINER_PORTS["redis"] not in scrape_ports("redis-clients")
    without = {d["metadata"]["name"]: d for d in _manifests(monitoring=False)}
    assert len(without["auth-from-nginx"]["spec"]["ingress"]) == 1


def test_tier_mapping_names_the_rendered_containers_and_labels() -> None:
    plan, deploy = _plan("k8s")
    files = monitoring_files(plan, deploy)
    mapping = yaml.safe_load(files["tiers.yaml"])
    assert mapping["version"] == 1
    assert mapping["cpu_source"] == "cadvisor"
    pods = _pods(_manifests())
    assert list(mapping["tiers"]) == TIERS
    for tier, matchers in mapping["tiers"].items():
        cpu = dict(re.findall(r'(\w+)=~?"([^"]*)"', matchers["cpu"]))
        assert cpu == {"namespace": "keelhaul", "container": tier, "pod": f"{tier}-.*"}
        assert cpu["container"] in [c["name"] for c in pods[tier]["spec"]["containers"]]
        metrics = dict(re.findall(r'(\w+)="([^"]*)"', matchers["metrics"]))
        label = pods[tier]["metadata"]["labels"]["app.kubernetes.io/name"]
        assert metrics == {"namespace": "keelhaul", "app_kubernetes_io_name": label}
    assert mapping["host"] == ""  # no node-exporter on Kubernetes
    no_redis = yaml.safe_load(monitoring_files(*_plan("k8s", redis=False))["tiers.yaml"])
    assert list(no_redis["tiers"]) == ["nginx", "auth", "registry"]
    anywhere = DeploySettings(target="k8s")
    plan = plan_for(StackSettings(monitoring=True), anywhere)
    unscoped = yaml.safe_load(monitoring_files(plan, anywhere)["tiers.yaml"])
    assert unscoped["tiers"]["nginx"]["cpu"] == 'container="nginx",pod=~"nginx-.*"'
    config = yaml.safe_load(monitoring_files(plan, anywhere)["config/prometheus.yml"])
    assert config["scrape_configs"][0]["kubernetes_sd_configs"] == [{"role": "pod"}]


def test_cluster_scrape_config_keeps_the_namespaces_annotated_pods_as_tier_jobs() -> None:
    plan, deploy = _plan("k8s")
    config = yaml.safe_load(monitoring_files(plan, deploy)["config/prometheus.yml"])
    assert config["global"]["scrape_interval"] == "1s"
    pods, cadvisor = config["scrape_configs"]
    assert pods["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["keelhaul"]}}]
    relabel = pods["relabel_configs"]
    job = [r for r in relabel if r.get("target_label") == "job"]
    assert job == [
        {
            "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "target_label": "job",
        }
    ]
    keep = [r["source_labels"][0] for r in relabel if r.get("action") == "keep"]
    assert keep == [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
        "__meta_kubernetes_pod_label_app_kubernetes_io_part_of",
    ]
    assert cadvisor["job_name"] == "kubernetes-cadvisor"
    # every node is scraped through the API server's address: the node names the instance
    instance = [r for r in cadvisor["relabel_configs"] if r.get("target_label") == "instance"]
    assert instance == [
        {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "instance"}
    ]


def test_compose_runs_prometheus_and_every_exporter_it_scrapes() -> None:
    document = _compose()
    services = document["services"]
    assert {"prometheus", "node-exporter", "process-exporter", "nginx-exporter"} <= set(services)
    assert "redis-exporter" in services
    assert document["volumes"]["prometheus-data"] == {}
    # only nginx is published to the world; Prometheus to the host's loopback
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    published = [n for n, s in services.items() if "ports" in s and n != "prometheus"]
    assert published == ["nginx"]
    assert services["nginx-exporter"]["network_mode"] == "service:nginx"
    assert services["process-exporter"]["pid"] == "host"
    assert services["auth"]["command"] == [
        "keelhaul", "auth", "serve", "--config", "/etc/keelhaul/config/auth.yml",
    ]  # fmt: skip

    plan, deploy = _plan("compose")
    files = monitoring_files(plan, deploy)
    scrape = yaml.safe_load(files["config/prometheus.yml"])
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in scrape["scrape_configs"]
    }
    assert set(targets) == {"nginx", "auth", "registry", "redis", "node", "process", "prometheus"}
    for job, target in targets.items():
        host, port = target.split(":")
        assert host in services, job  # a compose service name (nginx: the exporter's netns)
        assert int(port) in CONTAINER_PORTS.values()
    mounted = {
        v.split(":")[0].removeprefix("./") for s in services.values() for v in s.get("volumes", [])
    }
    assert {"config/prometheus.yml", "config/process-exporter.yml"} <= mounted
    groups = yaml.safe_load(files["config/process-exporter.yml"])["process_names"]
    assert [g["name"] for g in groups] == TIERS
    mapping = yaml.safe_load(files["tiers.yaml"])
    assert mapping["cpu_source"] == "process-exporter"
    assert mapping["tiers"]["auth"] == {
        "cpu": 'job="process",groupname="auth"',
        "metrics": 'job="auth"',
    }


def test_no_monitoring_no_change() -> None:
    services = _compose(monitoring=False)["services"]
    assert set(services) == {"nginx", "registry", "auth", "redis", REGISTRY_DATA_INIT}
    assert "command" not in services["auth"]
    assert all(
        "annotations" not in p["metadata"] for p in _pods(_manifests(monitoring=False)).values()
    )

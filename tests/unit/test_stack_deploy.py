"""Deployment artifacts from the local stack's plan: compose.yaml, Kubernetes manifests,
the token service's Dockerfile. Pure: rendered in memory, validated against the Kubernetes
schemas, cross-checked against each other and against the token service's settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from keelhaul.auth.settings import AuthSettings, load_auth_settings
from keelhaul.errors import ConfigError
from keelhaul.settings_base import env_overrides
from keelhaul.stack.doctor.nginxconf import find, find_all, parse
from keelhaul.stack.plan import CONTAINER_FILES, CONTAINER_PORTS, SERVICE_NAMES, StackPlan
from keelhaul.stack.registry import render_registry_config
from keelhaul.stack.render import DeploySettings, plan_for
from keelhaul.stack.render.compose import (
    COMPOSE_FILES,
    REGISTRY_DATA_INIT,
    compose_yaml,
    render_compose,
)
from keelhaul.stack.render.k8s import render_manifests
from keelhaul.stack.render.material import AUTH_UID, REGISTRY_UID, Material, config_files
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.storage import StorageSettings

pytestmark = pytest.mark.unit

K8S_VERSION = "1.30"
ROOT = Path(__file__).resolve().parents[2]
MATERIAL = Material(
    token_key="-----BEGIN PRIVATE KEY-----\n...\n",
    token_cert="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    htpasswd="admin:$2b$04$x\n",
    auth_secret="a" * 48,
    registry_secret="r" * 32,
    tls_cert="-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n",
    tls_key="-----BEGIN PRIVATE KEY-----\n...\n",
)
VARIANTS = {
    "default": (StackSettings(), {"target": "k8s"}),
    "tls-s3": (
        StackSettings(tls=True),
        {
            "target": "k8s",
            "public_url": "https://registry.example.com",
            "namespace": "registry",
            "storage": {"driver": "s3", "bucket": "blobs", "region": "eu-west-1"},
        },
    ),
    "gcs-no-redis": (
        StackSettings(redis=False, auth_worker_class="gthread"),
        {"target": "k8s", "storage": {"driver": "gcs", "bucket": "blobs", "rootdirectory": "r"}},
    ),
    "external-redis": (
        StackSettings(redis_url="redis://:shared-pw@redis.prod.example:6390/4", monitoring=True),
        {"target": "k8s"},
    ),
}


def _render(
    settings: StackSettings, raw: dict[str, Any]
) -> tuple[StackPlan, DeploySettings, dict[str, str]]:
    deploy = DeploySettings.model_validate(raw)
    plan = plan_for(settings, deploy)
    return plan, deploy, config_files(plan, MATERIAL)


def _manifests(name: str) -> dict[str, list[dict[str, Any]]]:
    settings, raw = VARIANTS[name]
    plan, deploy, configs = _render(settings, raw)
    return render_manifests(plan, deploy, MATERIAL, configs)


def _all(name: str) -> list[dict[str, Any]]:
    return [doc for docs in _manifests(name).values() for doc in docs]


def _kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    deployment = _kind(docs, "Deployment", name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _compose(settings: StackSettings | None = None, **raw: Any) -> dict[str, Any]:
    plan, deploy, _ = _render(settings or StackSettings(), {"target": "compose", **raw})
    document = yaml.safe_load(compose_yaml(render_compose(plan, deploy)))
    assert isinstance(document, dict)
    return document


# ----------------------------------------------------------------- the deployment plan


def test_deployment_plan_binds_everywhere_and_finds_peers_by_service_name() -> None:
    plan, _, configs = _render(StackSettings(), {"target": "compose"})
    registry = yaml.safe_load(configs["registry.yml"])
    assert registry["http"]["addr"] == "0.0.0.0:5000"
    assert registry["http"]["host"] == "http://localhost:5000"
    assert "secret" not in registry["http"]  # REGISTRY_HTTP_SECRET, from a secret
    assert registry["auth"]["token"]["realm"] == "http://localhost:5000/token"
    assert registry["redis"]["addr"] == "redis:6379"
    assert registry["auth"]["token"]["rootcertbundle"] == CONTAINER_FILES.bundle
    assert plan.bind("nginx_status") == "127.0.0.1:8081"  # loopback even in a container


def test_deployment_auth_config_needs_only_the_secret_from_the_environment() -> None:
    _, _, configs = _render(StackSettings(), {"target": "k8s", "cpus": 3})
    data = yaml.safe_load(configs["auth.yml"])
    assert "secret" not in data
    with pytest.raises(ConfigError, match="secret: is required"):
        load_auth_settings(data=data, environ={})
    settings = load_auth_settings(data=data, environ={"KEELHAUL_AUTH_SECRET": "s" * 40})
    assert settings.server.bind == "0.0.0.0:8000"
    assert settings.server.workers == 6  # 2 x the container's CPU limit, not the node's
    assert settings.server.trusted_proxies == 1
    assert settings.cache.redis_url is not None
    assert settings.cache.redis_url.get_secret_value() == "redis://redis:6379/1"
    assert settings.audit.path is None  # the container log
    assert str(settings.token.keys[0].key) == CONTAINER_FILES.signing_key


@pytest.mark.parametrize(
    ("storage", "section"),
    [
        ({}, {"filesystem": {"rootdirectory": "/var/lib/registry"}}),
        (
            {"driver": "s3", "bucket": "b", "region": "eu-west-1"},
            {"s3": {"bucket": "b", "region": "eu-west-1", "encrypt": True, "secure": True,
                    "v4auth": True, "chunksize": 10485760}},
        ),
        (
            {"driver": "s3", "bucket": "b", "region": "us-east-1",
             "endpoint": "http://minio:9000", "rootdirectory": "reg"},
            {"s3": {"bucket": "b", "region": "us-east-1", "regionendpoint": "http://minio:9000",
                    "encrypt": True, "secure": False, "v4auth": True, "chunksize": 10485760,
                    "rootdirectory": "reg"}},
        ),
        (
            {"driver": "gcs", "bucket": "g"},
            {"gcs": {"bucket": "g", "chunksize": 10485760}},
        ),
    ],
)  # fmt: skip
def test_registry_storage_drivers(storage: dict[str, str], section: dict[str, Any]) -> None:
    plan, _, _ = _render(StackSettings(), {"target": "k8s", "storage": storage})
    config = render_registry_config(plan, http_secret=None)
    driver = next(iter(section))
    assert {driver: config["storage"][driver]} == section
    assert config["storage"]["delete"] == {"enabled": True}
    assert section[driver].get("chunksize", 0) % (256 * 1024) == 0  # what GCS requires


@pytest.mark.parametrize(
    ("storage", "problem"),
    [
        ({"driver": "s3", "region": "x"}, "needs a bucket"),
        ({"driver": "s3", "bucket": "b"}, "needs a region"),
        ({"driver": "gcs", "bucket": "b", "region": "x"}, "s3 only"),
    ],
)
def test_storage_settings_name_what_is_missing(storage: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        StorageSettings.model_validate(storage)


def test_public_url_must_match_tls_and_have_no_path() -> None:
    with pytest.raises(ValidationError, match="not have a path"):
        DeploySettings.model_validate({"target": "k8s", "public_url": "https://x/v2"})
    with pytest.raises(ConfigError, match="must be https:// with --tls"):
        plan_for(StackSettings(tls=True), DeploySettings(target="k8s"))


# ----------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_manifests_validate_against_the_kubernetes_schemas(variant: str) -> None:
    docs = _all(variant)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_one_deployment_per_tier_with_probes_and_limits() -> None:
    docs = _all("default")
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == {"nginx", "registry", "auth", "redis"}
    for name in deployments:
        pod = _kind(docs, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["enableServiceLinks"] is False  # REGISTRY_PORT would break the registry
        (container,) = pod["containers"]
        assert container["readinessProbe"] and container["livenessProbe"]
        assert set(container["resources"]) == {"requests", "limits"}
        assert container["securityContext"]["runAsNonRoot"] is True
    registry = _container(docs, "registry")
    assert registry["readinessProbe"]["httpGet"] == {
        "path": "/debug/health", "port": 5001, "scheme": "HTTP",
    }  # fmt: skip
    assert "tcpSocket" in registry["livenessProbe"]
    assert _container(docs, "auth")["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert _container(docs, "nginx")["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert _container(docs, "redis")["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]


def test_hpa_secrets_configmaps_and_storage() -> None:
    docs = _all("default")
    hpa = _kind(docs, "HorizontalPodAutoscaler", "auth")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "auth"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in _kind(docs, "Deployment", "auth")["spec"]  # the HPA owns it
    keys = _kind(docs, "Secret", "keelhaul-keys")["stringData"]
    assert set(keys) == {"token.key", "token.crt"}
    env = _kind(docs, "Secret", "keelhaul-env")["stringData"]
    assert set(env) == {"KEELHAUL_AUTH_SECRET", "REGISTRY_HTTP_SECRET"}
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    assert config_maps == {"keelhaul-registry", "keelhaul-auth", "keelhaul-nginx"}
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        text = "".join(cm["data"].values())
        assert MATERIAL.auth_secret not in text and MATERIAL.registry_secret not in text
    pvc = _kind(docs, "PersistentVolumeClaim", "registry-data")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    registry = _kind(docs, "Deployment", "registry")["spec"]
    assert registry["replicas"] == 1 and registry["strategy"]["type"] == "Recreate"


def test_object_storage_has_no_volume_and_scales_out() -> None:
    docs = _all("tls-s3")
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert _kind(docs, "Deployment", "registry")["spec"]["replicas"] == 2
    env = {e["name"] for e in _container(docs, "registry")["env"]}
    assert {"REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY"} <= env
    assert _kind(docs, "Secret", "keelhaul-tls")["type"] == "kubernetes.io/tls"
    assert all(d["metadata"]["namespace"] == "registry" for d in docs)
    nginx = _container(docs, "nginx")
    assert nginx["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    service = _kind(docs, "Service", "nginx")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"][0]["port"] == 443
    assert service["spec"]["ports"][0]["targetPort"] == 8443


def test_no_redis_means_no_redis_objects() -> None:
    manifests = _manifests("gcs-no-redis")
    assert "redis.yaml" not in manifests
    docs = [d for docs in manifests.values() for d in docs]
    assert not [d for d in docs if d["metadata"]["name"].startswith("redis")]


def test_an_external_redis_has_no_redis_objects_and_its_password_only_in_secrets() -> None:
    settings, raw = VARIANTS["external-redis"]
    plan, deploy, configs = _render(settings, raw)
    material = Material(**{**MATERIAL.__dict__, "redis_password": plan.redis_password})
    manifests = render_manifests(plan, deploy, material, configs)
    assert "redis.yaml" not in manifests
    docs = [d for docs in manifests.values() for d in docs]
    assert not [d for d in docs if d["metadata"]["name"].startswith("redis")]
    registry = yaml.safe_load(configs["registry.yml"])["redis"]
    assert registry["addr"] == "redis.prod.example:6390" and registry["db"] == 4
    assert "password" not in registry
    auth = yaml.safe_load(configs["auth.yml"])["cache"]
    assert auth["redis_url"] == "redis://redis.prod.example:6390/4"
    for name, text in manifests.items():
        if name != "secrets.yaml":
            assert "shared-pw" not in yaml.safe_dump_all(text), name
    assert "shared-pw" not in "".join(configs.values())
    env = {e["name"] for tier in ("auth", "registry") for e in _container(docs, tier)["env"]}
    assert {"KEELHAUL_AUTH_CACHE__REDIS_PASSWORD", "REGISTRY_REDIS_PASSWORD"} <= env
    (secret,) = [d for d in docs if d["kind"] == "Secret" and "REGISTRY_REDIS_PASSWORD"
                 in d.get("stringData", {})]  # fmt: skip
    assert secret["stringData"]["KEELHAUL_AUTH_CACHE__REDIS_PASSWORD"] == "shared-pw"
    # the token service reads the password where the Secret puts it
    loaded = load_auth_settings(
        data=yaml.safe_load(configs["auth.yml"]),
        environ={"KEELHAUL_AUTH_SECRET": "a" * 48, **material.auth_env()},
    )
    assert loaded.cache.redis_password is not None
    assert loaded.cache.redis_password.get_secret_value() == "shared-pw"


# ----------------------------------------------------------------- compose


def test_compose_has_one_service_per_container_and_publishes_only_nginx() -> None:
    document = _compose()
    services = document["services"]
    assert set(services) == {"nginx", "registry", "auth", "redis", REGISTRY_DATA_INIT}
    assert [name for name, s in services.items() if "ports" in s] == ["nginx"]
    assert services["nginx"]["ports"] == ["5000:8080"]
    assert document["networks"]["backend"]["internal"] is True
    for service in services.values():
        assert service["read_only"] is True
    for name in ("nginx", "registry", "auth", "redis"):
        assert "healthcheck" in services[name]


def test_compose_hands_a_fresh_registry_volume_to_the_registry_user_first() -> None:
    """The official image's VOLUME is root's: a one-shot chown (root, CAP_CHOWN only, no
    network) runs before the registry, which runs as its own uid; object storage needs none."""
    services = _compose()["services"]
    init, registry = services[REGISTRY_DATA_INIT], services["registry"]
    assert registry["depends_on"][REGISTRY_DATA_INIT] == {
        "condition": "service_completed_successfully"
    }
    data = "/var/lib/registry"
    assert init["entrypoint"] == ["chown", f"{REGISTRY_UID}:{REGISTRY_UID}", data]
    assert init["image"] == registry["image"]
    assert init["volumes"] == [f"registry-data:{data}"]
    assert f"registry-data:{data}" in registry["volumes"]
    assert registry["user"] == f"{REGISTRY_UID}:{REGISTRY_UID}"
    assert (init["user"], init["cap_drop"], init["cap_add"]) == ("0:0", ["ALL"], ["CHOWN"])
    assert init["network_mode"] == "none" and init["restart"] == "no"
    s3 = _compose(storage={"driver": "s3", "bucket": "blobs", "region": "eu-west-1"})["services"]
    assert REGISTRY_DATA_INIT not in s3 and REGISTRY_DATA_INIT not in s3["registry"]["depends_on"]
    assert "&id" not in compose_yaml(
        render_compose(*_render(StackSettings(), {"target": "compose"})[:2])
    )


def test_compose_on_an_external_redis_has_no_redis_service() -> None:
    services = _compose(StackSettings(redis_url="redis://10.9.8.7:6379/2"))["services"]
    assert set(services) == {"nginx", "registry", "auth", REGISTRY_DATA_INIT}
    assert "depends_on" not in services["auth"]
    assert set(services["registry"]["depends_on"]) == {REGISTRY_DATA_INIT}


def test_compose_mounts_come_from_the_rendered_directory() -> None:
    services = _compose(StackSettings(tls=True), public_url="https://r.example.com:5443")[
        "services"
    ]
    mounts = [v for s in services.values() for v in s.get("volumes", []) if v.startswith("./")]
    sources = {m.split(":")[0].removeprefix("./") for m in mounts}
    assert sources <= set(COMPOSE_FILES.values())
    assert "secrets/tls.key" in sources
    assert services["nginx"]["ports"] == ["5443:8443"]


# ----------------------------------------------------------------- everything agrees


def _nginx_upstreams(text: str) -> dict[str, list[str]]:
    (http,) = find_all(parse(text), "http")
    return {
        u.args[0]: [s.args[0] for s in find_all(u.block or (), "server")]
        for u in find_all(http.block or (), "upstream")
    }


def _port_of(addr: str) -> int:
    return int(addr.rpartition(":")[2])


def test_ports_and_service_names_agree_everywhere() -> None:
    plan, deploy, configs = _render(StackSettings(), {"target": "k8s"})
    docs = render_manifests(plan, deploy, MATERIAL, configs)
    flat = [d for ds in docs.values() for d in ds]
    compose = _compose()["services"]
    registry = yaml.safe_load(configs["registry.yml"])
    auth = yaml.safe_load(configs["auth.yml"])
    upstreams = _nginx_upstreams(configs["nginx.conf"])

    expected = {
        "registry": _port_of(registry["http"]["addr"]),
        "auth": _port_of(auth["server"]["bind"]),
        "redis": _port_of(registry["redis"]["addr"]),
    }
    assert expected == {k: CONTAINER_PORTS[k] for k in expected}
    assert auth["cache"]["redis_url"] == f"redis://redis:{expected['redis']}/1"
    for tier, port in expected.items():
        name = SERVICE_NAMES[tier]
        assert name in compose  # compose service name = host name peers use
        service = _kind(flat, "Service", name)
        assert port in [p["port"] for p in service["spec"]["ports"]]
        assert port in [p["targetPort"] for p in service["spec"]["ports"]]
        ports = [p["containerPort"] for p in _container(flat, name)["ports"]]
        assert port in ports
        if tier != "redis":
            assert upstreams[tier] == [f"{name}:{port}"]
    redis_cmd = compose["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--port") + 1] == str(expected["redis"])
    assert _container(flat, "redis")["command"] == redis_cmd
    auth_probe = _container(flat, "auth")["readinessProbe"]["httpGet"]["port"]
    assert auth_probe == expected["auth"]
    probe = " ".join(compose["auth"]["healthcheck"]["test"])
    assert f"/dev/tcp/127.0.0.1/{expected['auth']} " in probe and "GET /healthz " in probe
    nginx_listen = find(
        find_all(find_all(parse(configs["nginx.conf"]), "http")[0].block or (), "server")[0].block
        or (),
        "listen",
    )
    assert nginx_listen is not None
    assert nginx_listen.args[0] == f"0.0.0.0:{CONTAINER_PORTS['nginx']}"
    assert _container(flat, "nginx")["ports"][0]["containerPort"] == CONTAINER_PORTS["nginx"]


def _env_keys_compose(service: dict[str, Any], env_files: dict[str, set[str]]) -> set[str]:
    keys = set(service.get("environment", {}))
    for name in service.get("env_file", []):
        keys |= env_files[name]
    return keys


def test_environment_keys_agree_and_exist_in_the_token_service_settings() -> None:
    compose = _compose()["services"]
    env_files = {
        COMPOSE_FILES["auth.env"]: set(MATERIAL.auth_env()),
        COMPOSE_FILES["registry.env"]: set(MATERIAL.registry_env()),
    }
    flat = _all("default")
    for tier in ("auth", "registry"):
        k8s_keys = {e["name"] for e in _container(flat, tier).get("env", [])}
        assert _env_keys_compose(compose[tier], env_files) == k8s_keys, tier
    auth_keys = {e["name"] for e in _container(flat, "auth")["env"]}
    for key in auth_keys - {"PROMETHEUS_MULTIPROC_DIR", "KEELHAUL_AUTH_CONFIG"}:
        assert key.startswith("KEELHAUL_AUTH_")
        section = next(iter(env_overrides("KEELHAUL_AUTH_", {key: "x"})))
        assert section in AuthSettings.model_fields, key
    config_env = {e["name"]: e.get("value") for e in _container(flat, "auth")["env"]}
    assert config_env["KEELHAUL_AUTH_CONFIG"] == CONTAINER_FILES.auth_config
    assert compose["auth"]["environment"]["KEELHAUL_AUTH_CONFIG"] == CONTAINER_FILES.auth_config


def test_every_file_a_config_names_is_mounted() -> None:
    plan, deploy, configs = _render(StackSettings(tls=True), {
        "target": "k8s", "public_url": "https://r.example.com"})  # fmt: skip
    flat = [d for ds in render_manifests(plan, deploy, MATERIAL, configs).values() for d in ds]
    compose = _compose(StackSettings(tls=True), public_url="https://r.example.com")["services"]
    needed = {
        "auth": [CONTAINER_FILES.auth_config, CONTAINER_FILES.htpasswd,
                 CONTAINER_FILES.signing_key, CONTAINER_FILES.signing_cert],
        "registry": [CONTAINER_FILES.registry_config, CONTAINER_FILES.bundle],
        "nginx": [CONTAINER_FILES.nginx_config, CONTAINER_FILES.tls_cert, CONTAINER_FILES.tls_key],
    }  # fmt: skip
    for tier, paths in needed.items():
        container = _container(flat, tier)
        volumes = {
            v["name"]: v for v in _kind(flat, "Deployment", tier)["spec"]["template"]["spec"][
                "volumes"]
        }  # fmt: skip
        compose_targets = {v.split(":")[1] for v in compose[tier].get("volumes", [])}
        for path in paths:
            directory, name = path.rsplit("/", 1)
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
            source = volumes[mount["name"]]
            items = (source.get("configMap") or source.get("secret"))["items"]
            assert name in [i["path"] for i in items], path
            assert path in compose_targets, path


def test_dockerfile_agrees_with_the_deployment_plan() -> None:
    text = (ROOT / "deploy/auth.Dockerfile").read_text()
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", text, re.M)
    assert "python:3.11-slim" in text
    assert f"EXPOSE {CONTAINER_PORTS['auth']}" in text
    assert f"http://127.0.0.1:{CONTAINER_PORTS['auth']}/healthz" in text
    assert f"KEELHAUL_AUTH_CONFIG={CONTAINER_FILES.auth_config}" in text
    assert f"USER {AUTH_UID}" in text
    assert "--require-hashes" in text
    assert 'CMD ["keelhaul", "auth", "serve"]' in text
    for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        assert (ROOT / source).exists(), source
    ignore = (ROOT / "deploy/auth.Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        assert source.rstrip("/") in allowed, f"{source} is excluded by the .dockerignore"


def test_the_image_command_exists() -> None:
    """``CMD ["keelhaul", "auth", "serve"]``: the console script and the subcommand exist."""
    import tomllib

    from keelhaul.cli.auth_cmd import auth

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["keelhaul"] == "keelhaul.cli.main:main"
    assert "serve" in auth.commands

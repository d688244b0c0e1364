"""The rendered compose file, run by a real engine (issue 14): the images ``make images``
builds (cached), ``keelhaul stack render --target compose``, ``docker-compose up -d`` against
the session's private dockerd, and real clients through the one published port.

Network discipline: the daemon publishes on this host's loopback address only (checked
below), the containers talk to each other on the two networks the compose project creates,
and every container, network and volume of the project is removed by id at the end (the
test asserts that ``docker-compose down`` already removed them).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from keelhaul.client import write_image
from keelhaul.engine.images import ImageNames, build_images
from keelhaul.netutil import free_port
from keelhaul.stack.render.compose import REGISTRY_DATA_INIT
from keelhaul.stack.render.material import REGISTRY_UID
from support.engines import ENGINE_CACHE, DockerClient, loopback_name
from support.stacks import clean_env, keelhaul

if TYPE_CHECKING:
    from keelhaul.engine import Dockerd
    from support.engines import Ledger

# the first build on a fresh machine takes minutes (see the README's deployment section)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

COMPOSE = "/usr/bin/docker-compose"
TIERS = ("redis", "auth", "registry", "nginx")
HEALTH_WAIT = 300.0


@pytest.fixture(scope="session")
def stack_images(dockerd: Dockerd) -> ImageNames:
    """``make images``' own code: what is cached is reused."""
    names = ImageNames()
    build_images(dockerd, cache=ENGINE_CACHE, names=names, say=print)
    return names


class Project:
    """``docker-compose -p NAME -f OUT/compose.yaml`` against the test's daemon."""

    def __init__(self, daemon: Dockerd, out: Path) -> None:
        self.daemon = daemon
        self.out = out
        self.name = f"kh{uuid.uuid4().hex[:10]}"

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMPOSE, "--project-name", self.name, "--file", str(self.out / "compose.yaml"), *args],
            capture_output=True,
            text=True,
            cwd=self.out,
            env=self.daemon.env(),
            timeout=timeout,
            check=False,
        )

    def containers(self) -> dict[str, dict[str, Any]]:
        """Service name -> ``docker inspect`` of its container."""
        ids = self.daemon.ids("container", f"com.docker.compose.project={self.name}")
        if not ids:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for item in self.daemon.inspect(*ids):
            labels: dict[str, str] = item["Config"]["Labels"]  # type: ignore[index]
            found[labels["com.docker.compose.service"]] = item
        return found

    def wait_healthy(self, deadline: float) -> dict[str, dict[str, Any]]:
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            containers = self.containers()
            states = {
                s: c["State"].get("Health", {}).get("Status", "none")
                for s, c in containers.items()
                if s in TIERS
            }
            if set(states) == set(TIERS) and all(v == "healthy" for v in states.values()):
                return containers
            time.sleep(2)
        logs = self.compose("logs", "--no-color", "--tail", "30").stdout
        pytest.fail(f"not healthy after {HEALTH_WAIT:.0f} s: {states}\n{logs}", pytrace=False)


def _passwords(out: Path) -> dict[str, str]:
    lines = (out / "secrets/passwords.txt").read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines if line)


def _authfile(path: Path, host: str, user: str, password: str) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"auths": {host: {"auth": token}}}, fh)
    return path


def _files_root(out: Path, root: Path) -> Path:
    """The containers' view of the rendered files, for ``stack doctor --files-root``:
    each bind mount of compose.yaml as a link at its target path."""
    document = yaml.safe_load((out / "compose.yaml").read_text())
    for service in document["services"].values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                link = root / target.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to(out / source)
    return root


def _skopeo(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/usr/bin/skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        env=clean_env({"HOME": str(tmp)}),
        timeout=300,
        check=False,
    )


def test_rendered_compose_runs_in_a_real_engine(
    dockerd: Dockerd, stack_images: ImageNames, engine_ledger: Ledger, tmp_path: Path
) -> None:
    name, address = loopback_name()
    port = free_port(address)
    host = f"{name}:{port}"
    out = tmp_path / "deploy"
    rendered = keelhaul(
        "stack", "render", "--target", "compose", "--out", str(out),
        "--public-url", f"http://{host}", "--publish-address", address,
        *stack_images.render_options(),
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    passwords = _passwords(out)
    project = Project(dockerd, out)
    try:
        up = project.compose("up", "--detach", "--no-color")
        engine_ledger.record_project(project.name)
        assert up.returncode == 0, up.stderr + project.compose("logs", "--tail", "20").stdout
        containers = project.wait_healthy(time.monotonic() + HEALTH_WAIT)
        engine_ledger.record_project(project.name)

        # the registry's fresh volume was handed to its user by the one-shot service
        init = containers[REGISTRY_DATA_INIT]["State"]
        assert (init["Status"], init["ExitCode"]) == ("exited", 0), init
        # the images are the ones built here; one port published, on loopback only
        for tier in TIERS:
            assert containers[tier]["Config"]["Image"] == stack_images.tier(tier)
        published = {
            tier: [
                b for binds in (c["NetworkSettings"]["Ports"] or {}).values() for b in (binds or [])
            ]
            for tier, c in containers.items()
            if tier in TIERS
        }
        assert published.pop("nginx") == [{"HostIp": address, "HostPort": str(port)}]
        assert all(not binds for binds in published.values()), published

        _clients_through_the_entry(dockerd, tmp_path, host, passwords)
        _load_and_doctor(out, tmp_path, host, passwords)
        _redis_restart_keeps_the_token_service(dockerd, project, tmp_path, host, passwords)

        # Kubernetes: the same images, ports, variables and volumes as what just ran
        k8s = tmp_path / "k8s"
        manifests = keelhaul(
            "stack", "render", "--target", "k8s", "--out", str(k8s),
            "--public-url", f"http://{host}", *stack_images.render_options(),
        )  # fmt: skip
        assert manifests.returncode == 0, manifests.stderr
        assert k8s_differences(out, k8s) == []

        down = project.compose("down", "--volumes", "--remove-orphans")
        assert down.returncode == 0, down.stderr
        assert engine_ledger.remaining() == {"container": set(), "network": set(), "volume": set()}
        assert engine_ledger.ids["container"] and engine_ledger.ids["network"]
        assert engine_ledger.ids["volume"]  # registry-data
    finally:
        engine_ledger.record_project(project.name)
        project.compose("down", "--volumes", "--remove-orphans", "--timeout", "10")


def _clients_through_the_entry(
    dockerd: Dockerd, tmp: Path, host: str, passwords: dict[str, str]
) -> None:
    layout = tmp / "layout"
    write_image(layout, layers=2, layer_size=64 * 1024, seed=14)
    repo = f"{host}/engines/compose"
    admin = _authfile(tmp / "admin.json", host, "admin", passwords["admin"])
    reader = _authfile(tmp / "reader.json", host, "reader", passwords["reader"])
    pushed = _skopeo(
        tmp, "copy", "--dest-tls-verify=false", "--dest-authfile", str(admin),
        f"oci:{layout}:latest", f"docker://{repo}:1",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    denied = _skopeo(
        tmp, "copy", "--dest-tls-verify=false", "--dest-authfile", str(reader),
        f"oci:{layout}:latest", f"docker://{repo}:reader-was-here",
    )  # fmt: skip
    assert denied.returncode != 0
    assert "denied" in denied.stderr.lower() or "unauthorized" in denied.stderr.lower()

    docker = DockerClient(dockerd, tmp / "docker-reader")
    login = docker.login(host, "reader", passwords["reader"])
    assert login.returncode == 0, login.stderr
    pulled = docker.run("pull", f"{repo}:1")
    try:
        assert pulled.returncode == 0, pulled.stderr
    finally:
        dockerd.docker("rmi", "-f", f"{repo}:1", check=False)
        docker.run("logout", host)


def _load_and_doctor(out: Path, tmp: Path, host: str, passwords: dict[str, str]) -> None:
    report = tmp / "load.json"
    load = subprocess.run(
        [
            sys.executable, "-m", "keelhaul",
            "load", "--target", f"http://{host}", "-u", "admin", "--password-stdin",
            "--run-time", "20s", "--json", str(report),
        ],
        input=passwords["admin"] + "\n",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )  # fmt: skip
    assert load.returncode == 0, load.stderr[-3000:]
    document = json.loads(report.read_text())
    assert document["aggregated"]["count"] > 0
    assert document["aggregated"]["failures"] == 0, document["errors"]
    assert document["errors"] == []

    config = out / "config"
    doctor = keelhaul(
        "stack", "doctor",
        "--registry-config", str(config / "registry.yml"),
        "--auth-config", str(config / "auth.yml"),
        "--nginx-config", str(config / "nginx.conf"),
        "--files-root", str(_files_root(out, tmp / "container-root")),
        "--cpus", "2", "--json",
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert json.loads(doctor.stdout)["findings"] == []


def _token(host: str, password: str) -> httpx.Response:
    return httpx.get(
        f"http://{host}/token",
        params={"service": "keelhaul-registry", "scope": "repository:engines/compose:pull"},
        auth=("admin", password),
        timeout=30,
    )


def _redis_restart_keeps_the_token_service(
    dockerd: Dockerd, project: Project, tmp: Path, host: str, passwords: dict[str, str]
) -> None:
    before = project.containers()
    auth_before = before["auth"]
    assert _token(host, passwords["admin"]).status_code == 200
    dockerd.docker("restart", before["redis"]["Id"])  # type: ignore[arg-type]
    after = project.wait_healthy(time.monotonic() + HEALTH_WAIT)
    assert after["redis"]["State"]["StartedAt"] != before["redis"]["State"]["StartedAt"]
    auth_after = after["auth"]
    assert auth_after["Id"] == auth_before["Id"]
    assert auth_after["State"]["StartedAt"] == auth_before["State"]["StartedAt"]
    assert auth_after["RestartCount"] == auth_before["RestartCount"]
    assert auth_after["State"]["Running"]
    # it still answers, with Redis (its credential cache) back
    for _ in range(3):
        assert _token(host, passwords["admin"]).status_code == 200


# --- Kubernetes: the same containers as the compose file that ran -------------------------


def _k8s_containers(k8s: Path) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Tier -> (its container, its pod's volumes) from the rendered manifests."""
    found: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for path in sorted(k8s.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Deployment":
                pod = doc["spec"]["template"]["spec"]
                (container,) = pod["containers"]
                found[doc["metadata"]["name"]] = (container, pod.get("volumes", []))
    return found


def _k8s_paths(container: dict[str, Any], volumes: list[dict[str, Any]]) -> set[str]:
    """Every path a volume puts into the container: files of ConfigMap/Secret items, else
    the mount's directory."""
    by_name = {v["name"]: v for v in volumes}
    paths: set[str] = set()
    for mount in container.get("volumeMounts", []):
        source = by_name[mount["name"]]
        items = (source.get("configMap") or source.get("secret") or {}).get("items")
        if items:
            paths |= {f"{mount['mountPath']}/{item['path']}" for item in items}
        else:
            paths.add(mount["mountPath"])
    return paths


def _compose_paths(service: dict[str, Any]) -> set[str]:
    tmpfs = {t.split(":")[0] for t in service.get("tmpfs", [])}  # path[:options]
    return {v.split(":")[1] for v in service.get("volumes", [])} | tmpfs


def _env_keys(out: Path, service: dict[str, Any]) -> dict[str, str | None]:
    """Variable -> literal value (None: from a secret file)."""
    env: dict[str, str | None] = dict(service.get("environment", {}))
    for name in service.get("env_file", []):
        for line in (out / name).read_text().splitlines():
            env[line.split("=", 1)[0]] = None
    return env


def _listening_ports(out: Path, tier: str, service: dict[str, Any]) -> set[int]:
    """The ports the tier's process opens for others, read from what the compose
    deployment gives it (its config file or its command)."""
    config = out / "config"
    if tier == "registry":
        http = yaml.safe_load((config / "registry.yml").read_text())["http"]
        return {int(http["addr"].rpartition(":")[2]), int(http["debug"]["addr"].rpartition(":")[2])}
    if tier == "auth":
        bind = yaml.safe_load((config / "auth.yml").read_text())["server"]["bind"]
        return {int(str(bind).rpartition(":")[2])}
    if tier == "redis":
        command = service["command"]
        return {int(command[command.index("--port") + 1])}
    return {int(p.split(":")[-1]) for p in service["ports"]}


def _long_running(services: dict[str, Any]) -> dict[str, Any]:
    """The services that stay up: not the one-shot ones another service waits on to
    complete (the registry volume's chown, which Kubernetes does with the pod's fsGroup)."""
    one_shot = {
        name
        for service in services.values()
        for name, wait in (service.get("depends_on") or {}).items()
        if wait.get("condition") == "service_completed_successfully"
    }
    return {name: s for name, s in services.items() if name not in one_shot}


def k8s_differences(out: Path, k8s: Path) -> list[str]:
    """Where the manifests in ``k8s`` differ from ``out/compose.yaml``: image, ports,
    environment (names, and values where literal), the paths volumes provide, commands."""
    services = _long_running(yaml.safe_load((out / "compose.yaml").read_text())["services"])
    pods = _k8s_containers(k8s)
    problems: list[str] = []
    if set(pods) != set(services):
        problems.append(f"tiers: k8s {sorted(pods)} vs compose {sorted(services)}")
    for tier in sorted(set(pods) & set(services)):
        (container, volumes), service = pods[tier], services[tier]
        if container["image"] != service["image"]:
            problems.append(f"{tier}: image {container['image']} vs {service['image']}")
        k8s_ports = {p["containerPort"] for p in container.get("ports", [])}
        if k8s_ports != _listening_ports(out, tier, service):
            problems.append(f"{tier}: ports {k8s_ports} vs {_listening_ports(out, tier, service)}")
        k8s_env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if k8s_env != _env_keys(out, service):
            problems.append(f"{tier}: environment {k8s_env} vs {_env_keys(out, service)}")
        if _k8s_paths(container, volumes) != _compose_paths(service):
            problems.append(
                f"{tier}: volumes {sorted(_k8s_paths(container, volumes))} vs "
                f"{sorted(_compose_paths(service))}"
            )
        if container.get("command", service.get("command")) != service.get("command"):
            problems.append(
                f"{tier}: command {container.get('command')} vs {service.get('command')}"
            )
    return problems


def _render_both(tmp: Path, *options: str) -> tuple[Path, Path]:
    out, k8s = tmp / "compose", tmp / "k8s"
    for target, where in (("compose", out), ("k8s", k8s)):
        done = keelhaul("stack", "render", "--target", target, "--out", str(where), *options)
        assert done.returncode == 0, done.stderr
    return out, k8s


@pytest.mark.parametrize(
    "options",
    [
        (),
        ("--tls", "--public-url", "https://registry.example.com"),
        ("--no-redis",),
        ("--registry-image", "mirror.example.com/registry:2.8.3", "--redis-image", "r:7"),
    ],
    ids=["default", "tls", "no-redis", "images"],
)
def test_k8s_manifests_match_compose(tmp_path: Path, options: tuple[str, ...]) -> None:
    out, k8s = _render_both(tmp_path, *options)
    assert k8s_differences(out, k8s) == []


def test_k8s_differences_are_seen(tmp_path: Path) -> None:
    """The comparison can fail: a changed image, port, variable or mount is named."""
    out, k8s = _render_both(tmp_path)
    auth = k8s / "auth.yaml"
    text = auth.read_text()
    for old, new in (
        ("image: keelhaul-auth:", "image: other-auth:"),
        ("containerPort: 8000", "containerPort: 8001"),
        ("name: PROMETHEUS_MULTIPROC_DIR", "name: PROMETHEUS_MULTIPROC"),
        ("mountPath: /tmp", "mountPath: /scratch"),
    ):
        assert old in text
        auth.write_text(text.replace(old, new, 1))
        problems = k8s_differences(out, k8s)
        assert len(problems) == 1 and problems[0].startswith("auth: "), problems
    auth.write_text(text)
    assert k8s_differences(out, k8s) == []


def test_a_fresh_registry_volume_needs_the_init_service(
    dockerd: Dockerd, stack_images: ImageNames, engine_ledger: Ledger, tmp_path: Path
) -> None:
    """Why the compose file has ``registry-data-init``: the registry image (built like the
    official one: a root-owned ``VOLUME /var/lib/registry``, no ``USER``) gives a fresh named
    volume to root, and the registry's uid cannot write into it until the rendered one-shot
    service has run. Shown with the image and the service exactly as rendered."""
    out = tmp_path / "deploy"
    rendered = keelhaul(
        "stack", "render", "--target", "compose", "--out", str(out),
        *stack_images.render_options(),
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    init = yaml.safe_load((out / "compose.yaml").read_text())["services"][REGISTRY_DATA_INIT]
    volume = f"kh-registry-data-{uuid.uuid4().hex[:10]}"
    data = init["volumes"][0].split(":")[1]
    engine_ledger.ids["volume"].add(volume)
    dockerd.docker("volume", "create", volume)
    try:

        def as_registry_user(*argv: str) -> subprocess.CompletedProcess[str]:
            return dockerd.docker(
                "run", "--rm", "--network", "none", "--user", f"{REGISTRY_UID}:{REGISTRY_UID}",
                "-v", f"{volume}:{data}", "--entrypoint", argv[0], stack_images.registry,
                *argv[1:], check=False,
            )  # fmt: skip

        refused = as_registry_user("touch", f"{data}/probe")
        assert refused.returncode != 0
        assert "permission denied" in refused.stderr.lower(), refused.stderr
        chown = dockerd.docker(
            "run", "--rm", "--network", "none", "--user", init["user"],
            "--read-only", "--cap-drop", "ALL", "--cap-add", "CHOWN",
            "-v", f"{volume}:{data}", "--entrypoint", init["entrypoint"][0],
            stack_images.registry, *init["entrypoint"][1:], check=False,
        )  # fmt: skip
        assert chown.returncode == 0, chown.stderr
        written = as_registry_user("touch", f"{data}/probe")
        assert written.returncode == 0, written.stderr
    finally:
        dockerd.docker("volume", "rm", "--force", volume, check=False)
    assert engine_ledger.remaining()["volume"] == set()

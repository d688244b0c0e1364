"""The rendered artifacts against the real programs that will read them, without a
container engine: ``nginx -t`` on every nginx.conf the renderer makes, the registry
started on the rendered config, the doctor on a rendered deployment, the Dockerfile's
build stage run here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from keelhaul.netutil import free_port, wait_for_port
from keelhaul.stack import procs
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.nginx import render_nginx_conf
from keelhaul.stack.plan import CONTAINER_FILES, StackPlan
from keelhaul.stack.render import DeploySettings, render_deployment
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.tls import issue_server_cert

if TYPE_CHECKING:
    from support.servers import RedisServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}


def keelhaul(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        capture_output=True, text=True, env=_env(), timeout=120, check=False,
    )  # fmt: skip


def nginx_t(conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NGINX, "-t", "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


# ----------------------------------------------------------------- nginx -t


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_nginx_accepts_the_local_stack_config(tmp_path: Path, tls: bool) -> None:
    layout = StackLayout(tmp_path / "stack")
    for directory in layout.dirs():
        directory.mkdir(parents=True, exist_ok=True)
    ports = {c: free_port() for c in ("redis", "auth", "registry", "registry_debug", "nginx",
                                      "nginx_status")}  # fmt: skip
    settings = StackSettings(tls=tls, proxy_workers=3, proxy_connections=2048)
    plan = StackPlan.local(layout, settings, ports)
    if tls:
        issue_server_cert(layout.ca_cert, layout.ca_key, layout.tls_cert, layout.tls_key,
                          ["127.0.0.1"])  # fmt: skip
    layout.nginx_config.write_text(render_nginx_conf(plan))
    result = nginx_t(layout.nginx_config, layout.nginx_dir)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
    text = layout.nginx_config.read_text()
    assert "worker_processes 3;" in text and "worker_connections 2048;" in text


def _containerised_nginx_conf(out: Path, tmp: Path) -> Path:
    """The container's nginx.conf, made testable here: service names resolve to loopback
    (no compose/cluster DNS on this host) and container paths point into ``tmp``."""
    text = (out / "config/nginx.conf").read_text()
    text = re.sub(r"server (registry|auth):", "server 127.0.0.1:", text)
    text = re.sub(r"_temp_path /tmp/", f"_temp_path {tmp}/", text)
    text = text.replace(f"pid {CONTAINER_FILES.nginx_pid};", f"pid {tmp}/nginx.pid;")
    text = text.replace(CONTAINER_FILES.tls_cert, str(out / "secrets/tls.crt"))
    text = text.replace(CONTAINER_FILES.tls_key, str(out / "secrets/tls.key"))
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


@pytest.mark.parametrize(
    ("target", "options"),
    [("compose", {}), ("k8s", {"tls": True})],
    ids=["compose-http", "k8s-tls"],
)
def test_nginx_accepts_the_rendered_container_config(
    tmp_path: Path, target: str, options: dict[str, bool]
) -> None:
    settings = StackSettings(**options)
    url = "https://registry.example.com" if settings.tls else "http://registry.example.com:5000"
    out = tmp_path / "out"
    render_deployment(settings, DeploySettings(target=target, public_url=url), out)  # type: ignore[arg-type]
    work = tmp_path / "nginx"
    work.mkdir()
    conf = _containerised_nginx_conf(out, work)
    result = nginx_t(conf, work)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------- the registry


@pytest.fixture
def registry_config(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Path, int, int]]:
    """The rendered deployment registry.yml, on free loopback ports and a real Redis."""
    out = tmp_path / "out"
    render_deployment(
        StackSettings(),
        DeploySettings(target="k8s", public_url="https://registry.example.com"),
        out,
    )
    config = yaml.safe_load((out / "config/registry.yml").read_text())
    port, debug = free_port(), free_port()
    config["http"]["addr"] = f"127.0.0.1:{port}"
    config["http"]["debug"]["addr"] = f"127.0.0.1:{debug}"
    config["storage"]["filesystem"]["rootdirectory"] = str(tmp_path / "data")
    config["auth"]["token"]["rootcertbundle"] = str(out / "config/bundle.pem")
    assert config["auth"]["token"]["signingalgorithms"] == ["ES256"]  # 2.8 must start with it
    config["redis"]["addr"] = f"127.0.0.1:{redis_server.port}"
    path = tmp_path / "registry.yml"
    path.write_text(yaml.safe_dump(config))
    yield path, port, debug


def test_registry_starts_on_the_rendered_config(
    registry_config: tuple[Path, int, int], tmp_path: Path
) -> None:
    path, port, debug = registry_config
    log = tmp_path / "registry.log"
    env = {**_env(), "REGISTRY_HTTP_SECRET": "s" * 32}
    pid = procs.spawn([REGISTRY, "serve", str(path)], log=log, env=env)
    try:
        assert wait_for_port("127.0.0.1", port, 10), procs.log_tail(log)
        with httpx.Client(trust_env=False, timeout=5) as http:
            assert http.get(f"http://127.0.0.1:{debug}/debug/health").status_code == 200
            base = http.get(f"http://127.0.0.1:{port}/v2/")
        assert base.status_code == 401
        assert 'realm="https://registry.example.com/token"' in base.headers["www-authenticate"]
        assert "level=error" not in log.read_text() and '"level":"error"' not in log.read_text()
    finally:
        procs.stop_all([procs.identity(pid, (str(path),))], 10)


# ----------------------------------------------------------------- render and doctor


def test_render_cli_writes_both_targets_and_keeps_secrets(tmp_path: Path) -> None:
    out = tmp_path / "compose"
    first = keelhaul("stack", "render", "--target", "compose", "--out", str(out),
                     "--public-url", "https://registry.example.com", "--tls")  # fmt: skip
    assert first.returncode == 0, first.stderr
    key = (out / "secrets/token.key").read_bytes()
    passwords = (out / "secrets/passwords.txt").read_text()
    assert (out / "secrets").stat().st_mode & 0o777 == 0o700
    again = keelhaul("stack", "render", "--target", "compose", "--out", str(out),
                     "--public-url", "https://registry.example.com", "--tls",
                     "--auth-workers", "7")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (out / "secrets/token.key").read_bytes() == key  # a knob never rotates the key
    assert (out / "secrets/passwords.txt").read_text() == passwords
    assert yaml.safe_load((out / "config/auth.yml").read_text())["server"]["workers"] == 7
    for password in passwords.split()[1::2]:
        assert password not in first.stdout + again.stdout

    k8s = tmp_path / "k8s"
    rendered = keelhaul("stack", "render", "--target", "k8s", "--out", str(k8s),
                        "--storage", "gcs", "--bucket", "blobs")  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    assert all((k8s / name).is_file() for name in kustomization["resources"])
    assert (k8s / "secrets.yaml").stat().st_mode & 0o777 == 0o600

    bad = keelhaul("stack", "render", "--target", "k8s", "--out", str(k8s), "--storage", "s3")
    assert bad.returncode == 2
    assert "needs a bucket" in bad.stderr and "Traceback" not in bad.stderr


def test_doctor_accepts_a_rendered_deployment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_deployment(
        StackSettings(tls=True),
        DeploySettings(target="k8s", public_url="https://registry.example.com", cpus=2),
        out,
    )
    root = tmp_path / "root"  # the containers' file system, as the doctor finds it here
    (root / "etc/keelhaul/keys").mkdir(parents=True)
    shutil.copy(out / "secrets/token.crt", root / "etc/keelhaul/keys/token.crt")
    result = keelhaul(
        "stack", "doctor", "--registry-config", str(out / "config/registry.yml"),
        "--auth-config", str(out / "config/auth.yml"), "--nginx-config",
        str(out / "config/nginx.conf"), "--cpus", "2", "--files-root", str(root),
        "--no-probe", "--json",
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["findings"] == []
    assert result.returncode == 0
    (key,) = report["topology"]["keys"]
    assert key["role"] == "signer" and "problem" not in key
    assert set(key["trusted_by"].values()) != {False}

    localhost = tmp_path / "localhost"
    render_deployment(StackSettings(), DeploySettings(target="compose"), localhost)
    flagged = keelhaul(
        "stack", "doctor", "--registry-config", str(localhost / "config/registry.yml"),
        "--nginx-config", str(localhost / "config/nginx.conf"), "--no-probe", "--json",
    )  # fmt: skip
    ids = [f["id"] for f in json.loads(flagged.stdout)["findings"]]
    assert ids == ["realm-loopback-mismatch"]  # the default public URL: this host only


# ----------------------------------------------------------------- the Dockerfile


def test_dockerfile_build_stage_works_here(tmp_path: Path) -> None:
    """What the image's build stage runs: the pinned build backend, then a wheel."""
    subset = subprocess.run(
        [sys.executable, str(ROOT / "deploy/lock_subset.py"), str(ROOT / "locks/dev.txt")],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert subset.returncode == 0, subset.stderr
    pinned = dict(re.findall(r"^([a-z0-9._-]+)==(\S+) \\$", subset.stdout, re.M))
    assert {"hatchling", "packaging", "pathspec", "pluggy", "trove-classifiers"} <= set(pinned)
    assert subset.stdout.count("--hash=sha256:") >= len(pinned)
    assert "locust" not in pinned
    wheel = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert wheel.returncode == 0, wheel.stderr
    (built,) = tmp_path.glob("keelhaul-*.whl")
    assert built.stat().st_size > 10_000

    auth_lock = (ROOT / "locks/auth.txt").read_text()
    assert "gunicorn==" in auth_lock and "locust==" not in auth_lock

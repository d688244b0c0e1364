"""``keelhaul stack doctor`` against a copy of the running stack's configs, one wrong thing
introduced per case: it must find exactly that, exit non-zero, and find nothing on the
untouched copy."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from keelhaul.auth.keygen import generate_keypair
from keelhaul.netutil import free_port

if TYPE_CHECKING:
    from support.servers import RedisServer
    from support.stacks import StackInfo

pytestmark = pytest.mark.e2e

Cli = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class Configs:
    """A copy of the stack's config directory, edited one thing at a time."""

    dir: Path
    stack: StackInfo

    @property
    def registry(self) -> Path:
        return self.dir / "registry.yml"

    @property
    def auth(self) -> Path:
        return self.dir / "auth.yml"

    @property
    def nginx(self) -> Path:
        return self.dir / "nginx.conf"

    def edit(self, path: Path, change: Callable[[dict[str, Any]], None]) -> None:
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def doctor(self, cli: Cli, *extra: str, cpus: int = 2) -> tuple[int, dict[str, Any]]:
        result = cli(
            "stack", "doctor",
            "--registry-config", str(self.registry),
            "--auth-config", str(self.auth),
            "--nginx-config", str(self.nginx),
            "--registry-url", self.stack.registry,
            "--cpus", str(cpus),
            "--json", *extra,
        )  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, json.loads(result.stdout)


def _ids(report: dict[str, Any]) -> list[str]:
    return [f["id"] for f in report["findings"]]


@pytest.fixture
def configs(stack: StackInfo, tmp_path: Path) -> Configs:
    copy = tmp_path / "config"
    shutil.copytree(stack.dir / "config", copy)
    return Configs(copy, stack)


def test_healthy_copy_has_no_findings(configs: Configs, cli: Cli) -> None:
    code, report = configs.doctor(cli)
    assert report["findings"] == [], report["findings"]
    assert code == 0
    assert report["ok"] is True
    assert report["notes"] == []
    tiers = {(e["from"], e["to"]) for e in report["topology"]["edges"]}
    assert {("client", "nginx"), ("nginx", "registry"), ("nginx", "auth")} <= tiers
    assert {("registry", "redis"), ("auth", "redis")} <= tiers
    clocks = {c["tier"]: c["offset_s"] for c in report["topology"]["clocks"]}
    assert abs(clocks["registry"]) < 2 and abs(clocks["auth"]) < 2


def test_running_local_stack_has_no_findings(stack: StackInfo, cli: Cli) -> None:
    result = cli("stack", "doctor", "--dir", str(stack.dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "findings: none" in result.stdout
    assert "db 0" in result.stdout and "db 1" in result.stdout  # shown, not flagged


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("issuer", "issuer-mismatch"),
        ("service", "service-mismatch"),
        ("worker-class", "auth-worker-class-blocking"),
        ("workers", "auth-workers-below-cores"),
        ("credential-cache", "credential-cache-off"),
        ("dead-realm", "realm-unreachable"),
        ("loopback-realm", "realm-loopback-mismatch"),
        ("buffering", "proxy-buffering-on"),
        ("body-size", "proxy-body-limit"),
        ("proxy-workers", "proxy-workers-below-cores"),
    ],
)
def test_each_misconfiguration_is_found(
    configs: Configs, cli: Cli, case: str, expected: str
) -> None:
    if case == "issuer":
        configs.edit(configs.auth, lambda d: d["token"].update(issuer="staging-auth"))
    elif case == "service":
        configs.edit(configs.registry, lambda d: d["auth"]["token"].update(service="other"))
    elif case == "worker-class":
        configs.edit(configs.auth, lambda d: d["server"].update(worker_class="sync"))
    elif case == "workers":
        configs.edit(configs.auth, lambda d: d["server"].update(workers=1))
    elif case == "credential-cache":
        configs.edit(configs.auth, lambda d: d["cache"].update(enabled=False))
    elif case == "dead-realm":
        dead = f"http://127.0.0.1:{free_port()}/token"
        configs.edit(configs.registry, lambda d: d["auth"]["token"].update(realm=dead))
    elif case == "loopback-realm":
        text = configs.nginx.read_text()
        entry = configs.stack.entry_host
        configs.nginx.write_text(text.replace(f"listen {entry}", "listen 0.0.0.0:8080"))
    elif case == "buffering":
        text = configs.nginx.read_text()
        configs.nginx.write_text(text.replace("proxy_buffering off;", "proxy_buffering on;"))
    elif case == "body-size":
        text = configs.nginx.read_text()
        configs.nginx.write_text(text.replace("client_max_body_size 0;", "# no limit set"))
    elif case == "proxy-workers":
        text = configs.nginx.read_text()
        configs.nginx.write_text(text.replace("worker_processes auto;", "worker_processes 1;"))
    code, report = configs.doctor(cli, cpus=4 if case == "workers" else 2)
    assert _ids(report) == [expected], report["findings"]
    assert code == 1
    (finding,) = report["findings"]
    assert finding["fix"] and "\n" not in finding["fix"]


def test_registry_on_another_redis_is_found(
    configs: Configs, cli: Cli, redis_server: RedisServer
) -> None:
    """The field report's staging tier pointing at production's Redis."""
    configs.edit(
        configs.registry, lambda d: d["redis"].update(addr=f"127.0.0.1:{redis_server.port}")
    )
    code, report = configs.doctor(cli)
    assert _ids(report) == ["redis-mismatch"], report["findings"]
    assert code == 1
    assert str(redis_server.port) in report["findings"][0]["message"]


def test_registry_on_another_redis_is_found_in_the_local_stack_mode(
    stack: StackInfo, cli: Cli, tmp_path: Path
) -> None:
    """With stack.json, the stack's own Redis is the reference and the odd tier is named."""
    copy = tmp_path / "stack"
    shutil.copytree(stack.dir, copy, ignore=shutil.ignore_patterns("data", "nginx", "run"))
    registry = Path(json.loads((copy / "stack.json").read_text())["config"]["registry"])
    assert registry.is_relative_to(stack.dir)
    moved = copy / "config/registry.yml"
    data = yaml.safe_load(moved.read_text())
    data["redis"]["addr"] = f"127.0.0.1:{free_port()}"
    moved.write_text(yaml.safe_dump(data))
    state = json.loads((copy / "stack.json").read_text())
    state["config"] = {k: str(copy / "config" / Path(v).name) for k, v in state["config"].items()}
    (copy / "stack.json").write_text(json.dumps(state))
    result = cli("stack", "doctor", "--dir", str(copy), "--json")
    report = json.loads(result.stdout)
    assert _ids(report) == ["redis-mismatch"], report["findings"]
    assert report["findings"][0]["tier"] == "registry"
    assert result.returncode == 1


def test_two_registries_on_different_storage(configs: Configs, cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "registry-b.yml"
    shutil.copy(configs.registry, other)
    configs.edit(other, lambda d: d["storage"].update(filesystem={"rootdirectory": "/srv/b"}))
    result = cli(
        "stack", "doctor", "--registry-config", str(configs.registry),
        "--registry-config", str(other), "--auth-config", str(configs.auth),
        "--no-probe", "--json",
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert _ids(report) == ["storage-mismatch"], report["findings"]
    assert result.returncode == 1


def test_bundle_without_the_signing_certificate(configs: Configs, cli: Cli, tmp_path: Path) -> None:
    stranger = generate_keypair(tmp_path / "other-keys")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(stranger.cert.read_bytes())
    configs.edit(configs.registry, lambda d: d["auth"]["token"].update(rootcertbundle=str(bundle)))
    code, report = configs.doctor(cli)
    assert _ids(report) == ["signing-key-not-in-bundle"], report["findings"]
    assert code == 1


def test_signing_certificate_about_to_expire(configs: Configs, cli: Cli, tmp_path: Path) -> None:
    pair = generate_keypair(tmp_path / "short", days=7)
    configs.edit(
        configs.auth,
        lambda d: d["token"].update(keys=[{"key": str(pair.key), "cert": str(pair.cert)}]),
    )
    configs.edit(
        configs.registry, lambda d: d["auth"]["token"].update(rootcertbundle=str(pair.cert))
    )
    code, report = configs.doctor(cli)
    assert _ids(report) == ["signing-cert-expiring"], report["findings"]
    assert "in 6 days" in report["findings"][0]["message"]
    assert code == 1


class _SkewedClock(BaseHTTPRequestHandler):
    """A 'registry' whose clock runs five minutes ahead."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        return format_datetime(datetime.now(UTC) + timedelta(minutes=5), usegmt=True)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def skewed_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SkewedClock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_clock_skew_between_registry_and_token_service(
    configs: Configs, cli: Cli, skewed_registry: str
) -> None:
    code, report = configs.doctor(cli, "--registry-url", skewed_registry)
    assert _ids(report) == ["clock-skew"], report["findings"]
    assert code == 1


def test_without_probes_unmeasured_things_are_notes(configs: Configs, cli: Cli) -> None:
    result = cli(
        "stack", "doctor", "--registry-config", str(configs.registry),
        "--auth-config", str(configs.auth), "--no-probe",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert "live checks skipped" in result.stdout


def test_unreadable_config_is_a_config_error(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "nginx.conf"
    broken.write_text("http { server { listen 80; }\n")
    result = cli("stack", "doctor", "--nginx-config", str(broken))
    assert result.returncode == 2
    assert "nginx.conf:1" in result.stderr
    assert "Traceback" not in result.stderr

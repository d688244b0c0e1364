"""nginx in front of the stack, through real clients: skopeo over http and https, a 512 MiB
layer that must stream through without touching nginx's temp directory, the JSON access
log, the forwarded headers, the status page."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from keelhaul.client import write_image

if TYPE_CHECKING:
    from tests.e2e.conftest import Skopeo

    from support.stacks import StackInfo

pytestmark = pytest.mark.e2e

BIG = 512 * 1024 * 1024


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    layout = tmp_path_factory.mktemp("small")
    return layout, write_image(layout, layers=2, layer_size=1 << 20, seed=77)


def _pulled_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def _access_log(stack: StackInfo) -> list[dict[str, object]]:
    """Parsed JSON lines (nginx flushes its log buffer every second)."""
    time.sleep(1.2)
    assert stack.raw["access_log"] == str(stack.dir / "logs/access.log")
    lines = Path(stack.raw["access_log"]).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_skopeo_push_and_pull_through_the_proxy(
    skopeo: Skopeo, stack: StackInfo, small_image: tuple[Path, str], tmp_path: Path
) -> None:
    layout, digest = small_image
    pushed = skopeo.push(layout, "admin/via-proxy:1", user="admin", host=stack.entry_host)
    assert pushed.returncode == 0, pushed.stderr
    dest = tmp_path / "pulled"
    pulled = skopeo.pull("admin/via-proxy:1", dest, user="reader", host=stack.entry_host)
    assert pulled.returncode == 0, pulled.stderr
    assert _pulled_digest(dest) == digest

    entries = _access_log(stack)
    uploads = [e for e in entries if e["method"] == "PATCH" and "via-proxy" in str(e["uri"])]
    assert uploads, "the push did not go through the proxy"
    tokens = [e for e in entries if str(e["uri"]).startswith("/token")]
    assert tokens, "the token requests did not go through the proxy"
    for entry in uploads + tokens:
        assert entry["upstream_addr"] in (stack.host, stack.token_url.split("/")[2])
        for key in ("request_time", "upstream_connect_time", "upstream_header_time"):
            assert key in entry
        float(str(entry["upstream_response_time"]))


def test_proxy_answers_v2_with_a_challenge_naming_itself(stack: StackInfo) -> None:
    with httpx.Client(trust_env=False, timeout=5) as http:
        base = http.get(f"{stack.entry}/v2/")
        other = http.get(f"{stack.entry}/metrics")
        health = http.get(f"{stack.entry}/healthz")
    assert base.status_code == 401
    assert base.headers["docker-distribution-api-version"] == "registry/2.0"
    assert f'realm="{stack.entry}/token"' in base.headers["www-authenticate"]
    assert other.status_code == 404  # only /v2/ and /token are exposed
    assert health.status_code == 200


def test_status_page_is_served_on_loopback(stack: StackInfo) -> None:
    status = httpx.get(f"{stack.urls['nginx_status']}/nginx_status", trust_env=False)
    assert status.status_code == 200
    assert status.text.startswith("Active connections:")
    assert stack.urls["nginx_status"].startswith("http://127.0.0.1:")


def test_client_ip_reaches_the_token_service_and_cannot_be_forged(stack: StackInfo) -> None:
    """X-Forwarded-For is set by nginx, not passed on: the audit log shows nginx's view."""
    marker = f"forged-{os.getpid()}"
    response = httpx.get(
        f"{stack.entry}/token",
        params={"service": stack.service, "client_id": marker},
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "gopher"},
        trust_env=False,
    )
    assert response.status_code in (200, 401)
    audit = stack.dir / "logs/audit.log"
    deadline = time.monotonic() + 5
    lines: list[dict[str, object]] = []
    while time.monotonic() < deadline and not lines:
        lines = [json.loads(x) for x in audit.read_text().splitlines() if marker in x]
        time.sleep(0.05)
    assert lines, "no audit line for the request"
    assert lines[-1]["client_ip"] == "127.0.0.1"
    # and the proxy's request id is the token service's: one id across both logs
    (logged,) = [e for e in _access_log(stack) if marker in str(e["uri"])]
    assert lines[-1]["request_id"] == logged["request_id"]


def test_tls_push_and_pull_with_the_ca(
    tls_skopeo: Skopeo, tls_stack: StackInfo, small_image: tuple[Path, str], tmp_path: Path
) -> None:
    assert tls_stack.entry.startswith("https://")
    assert tls_stack.ca_cert is not None
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(tls_stack.ca_cert, certs / "ca.crt")
    tool = tls_skopeo
    layout, digest = small_image
    host = tls_stack.entry_host

    pushed = tool.push(layout, "admin/tls:1", user="admin", host=host, cert_dir=certs)
    assert pushed.returncode == 0, pushed.stderr
    pulled = tool.pull("admin/tls:1", tmp_path / "p", user="reader", host=host, cert_dir=certs)
    assert pulled.returncode == 0, pulled.stderr
    assert _pulled_digest(tmp_path / "p") == digest

    # verification is on: without the CA the same pull fails on the certificate
    empty = tmp_path / "no-ca"
    empty.mkdir()
    refused = tool.pull("admin/tls:1", tmp_path / "q", user="reader", host=host, cert_dir=empty)
    assert refused.returncode != 0
    assert "certificate" in refused.stderr


def test_tls_realm_is_the_https_entry(tls_stack: StackInfo) -> None:
    assert tls_stack.ca_cert is not None
    verify = ssl.create_default_context(cafile=str(tls_stack.ca_cert))
    with httpx.Client(verify=verify, trust_env=False, timeout=5) as http:
        base = http.get(f"{tls_stack.entry}/v2/")
    assert base.status_code == 401
    assert f'realm="{tls_stack.entry}/token"' in base.headers["www-authenticate"]


# ----------------------------------------------------------------- a large layer streams


@dataclass
class TempWatch:
    """Polls a directory tree in a thread; remembers the most it ever held."""

    root: Path
    most_files: int = 0
    most_bytes: int = 0
    polls: int = 0

    def poll(self) -> None:
        files = 0
        size = 0
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                files += 1
                with contextlib.suppress(FileNotFoundError):
                    size += os.stat(os.path.join(dirpath, name)).st_size
        self.most_files = max(self.most_files, files)
        self.most_bytes = max(self.most_bytes, size)
        self.polls += 1


@pytest.fixture
def big_image(tmp_path: Path) -> Iterator[Path]:
    layout = tmp_path / "big"
    write_image(layout, layers=1, layer_size=BIG, seed=512)  # streamed to disk, not held
    try:
        yield layout
    finally:
        shutil.rmtree(layout, ignore_errors=True)


def test_a_512_mib_layer_streams_through_without_temp_files(
    skopeo: Skopeo, stack: StackInfo, big_image: Path
) -> None:
    watch = TempWatch(stack.dir / "nginx/tmp")
    stop = threading.Event()

    def watcher() -> None:
        while not stop.is_set():
            watch.poll()
            stop.wait(0.02)

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    t0 = time.monotonic()
    try:
        pushed = skopeo.push(big_image, "admin/big:1", user="admin", host=stack.entry_host)
    finally:
        stop.set()
        thread.join(5)
    elapsed = time.monotonic() - t0
    watch.poll()
    assert pushed.returncode == 0, pushed.stderr
    assert watch.polls > 10, "the watcher did not run during the upload"
    assert watch.most_files == 0, f"nginx spooled to its temp dir ({watch.most_bytes} bytes)"
    assert "buffered to a temporary file" not in (stack.dir / "logs/nginx.log").read_text()

    entries = _access_log(stack)
    big = [e for e in entries if e["method"] == "PATCH" and "admin/big" in str(e["uri"])]
    assert sum(int(str(e["request_length"])) for e in big) >= BIG
    assert elapsed < 120


def test_doctor_probes_an_https_realm_with_the_stacks_ca(
    tls_stack: StackInfo, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # --cpus 1: this stack runs one token service worker to start fast
    result = cli("stack", "doctor", "--dir", str(tls_stack.dir), "--cpus", "1", "--json")
    report = json.loads(result.stdout)
    assert report["findings"] == [], report["findings"]
    assert result.returncode == 0
    (probe,) = report["topology"]["realm_probes"]
    assert probe["url"].startswith("https://") and probe["status"] == 200
    assert {e["to"] for e in report["topology"]["edges"] if e.get("tls")} == {"nginx"}

"""Real clients against ``keelhaul stack up`` (issue 13, item 4): Debian's docker CLI through
a private dockerd, and podman with a private root; over plain http and over ``--tls``.

What dockerd does with a loopback registry, made explicit: 127.0.0.0/8 is in its built-in
insecure range (``docker info`` shows it; no flag removes it). Over http that is what lets
it talk to the local stack at all; over https it still speaks TLS (the ``--tls`` entry
serves nothing else) but does not verify the certificate, and it reads no ``certs.d`` for
such a registry (the CA is installed nowhere here, and the test proves it is not needed).
podman verifies: without the generated CA its login fails, with it (``--cert-dir``) it
succeeds.
"""

from __future__ import annotations

import re
import ssl
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from support.engines import DockerClient, Podman, stored_login, tiny_image

if TYPE_CHECKING:
    from tests.e2e.conftest import StackInfo

    from keelhaul.engine import Dockerd
    from support.engines import Ledger

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def _repo(stack: StackInfo, name: str) -> str:
    return f"{stack.entry_host}/engines/{name}-{uuid.uuid4().hex[:8]}"


def test_dockerd_treats_loopback_registries_as_insecure(dockerd: Dockerd) -> None:
    cidrs = dockerd.docker("info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}}")
    assert "127.0.0.0/8" in cidrs.stdout


def _docker_round_trip(
    dockerd: Dockerd, book: Ledger, stack: StackInfo, tmp_path: Path, verify: ssl.SSLContext | bool
) -> None:
    host = stack.entry_host
    admin = DockerClient(dockerd, tmp_path / "admin")
    reader = DockerClient(dockerd, tmp_path / "reader")

    # docker login: the OAuth2 password grant; what is stored is an identity token
    login = admin.login(host, "admin", stack.password("admin"))
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    stored = stored_login(admin.config(), host)
    assert stored.get("identitytoken"), stored.keys()
    assert stored["username"] == "admin"
    assert stored["password"] == ""  # the password itself is not kept
    assert stack.password("admin") not in (admin.config_dir / "config.json").read_text()
    # the identity token is a refresh token the token service honours
    refreshed = httpx.post(
        f"{stack.entry}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": stored["identitytoken"],
            "service": stack.service,
            "scope": "repository:engines/x:pull",
            "client_id": "docker",
        },
        verify=verify,
        timeout=30,
    )
    assert refreshed.status_code == 200, refreshed.text

    # push as admin
    image = tiny_image(dockerd, book, "push")
    repo = _repo(stack, "docker")
    tagged = f"{repo}:v1"
    dockerd.docker("tag", image, tagged)
    pushed = admin.run("push", tagged)
    assert pushed.returncode == 0, pushed.stderr
    found = DIGEST.search(pushed.stdout)
    assert found, pushed.stdout
    digest = found.group(1)

    # wrong password refused, nothing stored
    wrong = reader.login(host, "reader", "not-" + stack.password("reader"))
    assert wrong.returncode != 0
    assert "unauthorized" in wrong.stderr.lower() or "incorrect" in wrong.stderr.lower()
    assert host not in reader.config().get("auths", {})

    # pull as reader: the same manifest
    assert reader.login(host, "reader", stack.password("reader")).returncode == 0
    dockerd.docker("rmi", tagged)
    pulled = reader.run("pull", tagged)
    assert pulled.returncode == 0, pulled.stderr
    assert digest in pulled.stdout
    repo_digests = dockerd.docker("image", "inspect", "--format", "{{json .RepoDigests}}", tagged)
    assert f"{repo}@{digest}" in repo_digests.stdout

    # reader may not push
    dockerd.docker("tag", image, f"{repo}:reader-was-here")
    denied = reader.run("push", f"{repo}:reader-was-here")
    assert denied.returncode != 0
    assert "denied" in denied.stderr.lower(), denied.stderr

    # docker logout forgets the login
    for client in (admin, reader):
        out = client.run("logout", host)
        assert out.returncode == 0, out.stderr
        assert host not in client.config().get("auths", {})
    anonymous = admin.run("push", tagged)
    assert anonymous.returncode != 0


def test_docker_cli_against_the_stack(
    dockerd: Dockerd, engine_ledger: Ledger, stack: StackInfo, tmp_path: Path
) -> None:
    _docker_round_trip(dockerd, engine_ledger, stack, tmp_path, verify=False)


def test_docker_cli_against_the_tls_stack(
    dockerd: Dockerd, engine_ledger: Ledger, tls_stack: StackInfo, tmp_path: Path
) -> None:
    assert tls_stack.ca_cert is not None
    assert tls_stack.entry.startswith("https://")
    # the entry speaks https only: whatever docker did below went over TLS
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{tls_stack.entry_host}/v2/", timeout=10).raise_for_status()
    ca = ssl.create_default_context(cafile=str(tls_stack.ca_cert))
    _docker_round_trip(dockerd, engine_ledger, tls_stack, tmp_path, verify=ca)


def _push_for_podman(dockerd: Dockerd, book: Ledger, stack: StackInfo, tmp_path: Path) -> str:
    admin = DockerClient(dockerd, tmp_path / "admin")
    assert admin.login(stack.entry_host, "admin", stack.password("admin")).returncode == 0
    tagged = f"{_repo(stack, 'podman')}:v1"
    dockerd.docker("tag", tiny_image(dockerd, book, "podman"), tagged)
    pushed = admin.run("push", tagged)
    assert pushed.returncode == 0, pushed.stderr
    admin.run("logout", stack.entry_host)
    return tagged


def test_podman_login_and_pull(
    dockerd: Dockerd, engine_ledger: Ledger, stack: StackInfo, podman: Podman, tmp_path: Path
) -> None:
    tagged = _push_for_podman(dockerd, engine_ledger, stack, tmp_path)
    plain = "--tls-verify=false"  # http: podman's name for "not https"
    wrong = podman.login(stack.entry_host, "reader", "nope", plain)
    assert wrong.returncode != 0
    assert "invalid username/password" in wrong.stderr.lower(), wrong.stderr
    login = podman.login(stack.entry_host, "reader", stack.password("reader"), plain)
    assert login.returncode == 0, login.stderr
    assert stack.entry_host in podman.authfile.read_text()
    pulled = podman.run("pull", plain, tagged)
    assert pulled.returncode == 0, pulled.stderr
    assert podman.run("image", "exists", tagged).returncode == 0
    assert podman.run("logout", stack.entry_host).returncode == 0
    assert stack.entry_host not in podman.authfile.read_text()


def test_podman_verifies_the_tls_stack_with_its_ca(
    dockerd: Dockerd,
    engine_ledger: Ledger,
    tls_stack: StackInfo,
    podman: Podman,
    tmp_path: Path,
) -> None:
    assert tls_stack.ca_cert is not None
    tagged = _push_for_podman(dockerd, engine_ledger, tls_stack, tmp_path)
    host = tls_stack.entry_host
    untrusted = podman.login(host, "reader", tls_stack.password("reader"))
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr.lower(), untrusted.stderr
    # where podman looks for it: a cert dir holding the CA as *.crt
    certs = tmp_path / "certs.d" / host
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(tls_stack.ca_cert.read_bytes())
    login = podman.login(host, "reader", tls_stack.password("reader"), "--cert-dir", str(certs))
    assert login.returncode == 0, login.stderr
    pulled = podman.run("pull", "--cert-dir", str(certs), tagged)
    assert pulled.returncode == 0, pulled.stderr
    assert podman.run("image", "exists", tagged).returncode == 0

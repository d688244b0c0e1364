"""keelhaul's tokens against the real registry 2.8 (Debian's docker-registry), end to end.

The registry runs on keelhaul's registry token configuration, ``signingalgorithms`` pinned
as the stack renders it (2.8 must still start and accept tokens); ``keelhaul auth serve``
issues the tokens. 2.8 verifies an ``x5c`` chain when there is one; without it, it looks
the ``kid`` up by libtrust key id among the ``rootcertbundle`` keys.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from keelhaul.auth.authn.htpasswd import hash_password
from keelhaul.auth.keygen import generate_keypair
from keelhaul.auth.settings import KeyPair, TokenSettings
from keelhaul.auth.signing import KeyRing
from keelhaul.netutil import free_port, wait_for_port
from keelhaul.stack import procs
from keelhaul.stack.authconf import TOKEN_ALGORITHM
from support.stacks import clean_env

pytestmark = pytest.mark.e2e

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
ISSUER, SERVICE = "e2e-issuer", "e2e-registry"


@dataclass(frozen=True)
class Registry:
    url: str
    bundle: Path


def _spawn(argv: list[str], log: Path, port: int, env: dict[str, str]) -> procs.Identity:
    pid = procs.spawn(argv, log=log, env=env)
    ident = procs.identity(pid, (argv[-1],))
    if not wait_for_port("127.0.0.1", port, 20):
        procs.stop_all([ident], 10)
        pytest.fail(f"{argv[0]} did not start:\n{procs.log_tail(log)}")
    return ident


def _registry(tmp: Path, keys: list[KeyPair], algorithms: list[str]) -> Iterator[Registry]:
    port = free_port()
    bundle = tmp / "bundle.pem"
    bundle.write_bytes(b"".join(p.cert.read_bytes() for p in keys))
    config = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "s" * 32},
        "auth": {
            "token": {
                "realm": "http://127.0.0.1:1/token",
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(bundle),
                "signingalgorithms": algorithms,
            }
        },
    }
    path = tmp / "registry.yml"
    path.write_text(yaml.safe_dump(config))
    ident = _spawn([REGISTRY, "serve", str(path)], tmp / "registry.log", port, clean_env())
    try:
        yield Registry(f"http://127.0.0.1:{port}", bundle)
    finally:
        procs.stop_all([ident], 10)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory = tmp_path_factory.mktemp("keys")
    return {
        "ES256": generate_keypair(directory, name="ec"),
        "RS256": generate_keypair(directory, algorithm="RS256", name="rsa"),
    }


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, pairs: dict[str, KeyPair]
) -> Iterator[Registry]:
    """One 2.8 registry trusting both keys, with the pinned list keelhaul renders."""
    assert TOKEN_ALGORITHM == "ES256"
    yield from _registry(
        tmp_path_factory.mktemp("registry"), list(pairs.values()), ["ES256", "RS256"]
    )


def _catalog(registry: Registry, token: str) -> int:
    with httpx.Client(trust_env=False, timeout=10) as http:
        return http.get(
            f"{registry.url}/v2/_catalog", headers={"Authorization": f"Bearer {token}"}
        ).status_code


@pytest.fixture
def token_service(tmp_path: Path) -> Iterator[object]:
    """Start ``keelhaul auth serve`` on a config; yields a function returning tokens."""
    started: list[procs.Identity] = []

    def start(pair: KeyPair, algorithm: str, kid_format: str, include_x5c: bool) -> str:
        port = free_port()
        htpasswd = tmp_path / f"htpasswd-{port}"
        htpasswd.write_text(f"admin:{hash_password('admin-pw', 4)}\n")
        config = {
            "secret": "e2e-secret-" + "x" * 32,
            "token": {
                "issuer": ISSUER,
                "service": SERVICE,
                "algorithm": algorithm,
                "kid_format": kid_format,
                "include_x5c": include_x5c,
                "keys": [{"key": str(pair.key), "cert": str(pair.cert)}],
            },
            "users": {"htpasswd": str(htpasswd)},
            "acl": [{"match": {"account": "admin"}, "actions": ["*"]}],
            "cache": {"enabled": False},
            "audit": {"enabled": False},
        }
        path = tmp_path / f"auth-{port}.yml"
        path.write_text(yaml.safe_dump(config))
        argv = [
            sys.executable,
            "-m",
            "keelhaul",
            "auth",
            "serve",
            "--config",
            str(path),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
        ]
        started.append(_spawn(argv, tmp_path / f"auth-{port}.log", port, clean_env()))
        basic = base64.b64encode(b"admin:admin-pw").decode()
        with httpx.Client(trust_env=False, timeout=10) as http:
            r = http.get(
                f"http://127.0.0.1:{port}/token",
                params={"service": SERVICE, "scope": "registry:catalog:*"},
                headers={"Authorization": f"Basic {basic}"},
            )
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token

    try:
        yield start
    finally:
        procs.stop_all(started, 10)


def _header(token: str) -> dict[str, object]:
    segment = token.split(".", maxsplit=1)[0]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(segment + "=="))
    return decoded


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_without_x5c_the_libtrust_kid_is_found(
    registry: Registry, pairs: dict[str, KeyPair], token_service, algorithm: str
) -> None:  # type: ignore[no-untyped-def]
    token = token_service(pairs[algorithm], algorithm, "libtrust", False)
    header = _header(token)
    assert "x5c" not in header and str(header["kid"]).count(":") == 11
    assert _catalog(registry, token) == 200


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_default_token_with_x5c_is_accepted(
    registry: Registry, pairs: dict[str, KeyPair], token_service, algorithm: str
) -> None:  # type: ignore[no-untyped-def]
    token = token_service(pairs[algorithm], algorithm, "rfc7638", True)
    assert "x5c" in _header(token)
    assert _catalog(registry, token) == 200


def test_without_x5c_a_thumbprint_kid_is_not_a_28_key_id(
    registry: Registry, pairs: dict[str, KeyPair]
) -> None:
    """Why the docs say libtrust for 2.8 without x5c: 2.8 rejects any other kid."""
    ring = KeyRing.from_settings(
        TokenSettings.model_validate(
            {
                "issuer": ISSUER,
                "service": SERVICE,
                "keys": [pairs["ES256"]],
                "kid_format": "rfc7638",
                "include_x5c": False,
            }
        )
    )
    now = int(time.time())
    token = ring.sign(
        {
            "iss": ISSUER,
            "sub": "admin",
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now,
            "iat": now,
            "jti": "x",
            "access": [{"type": "registry", "name": "catalog", "actions": ["*"]}],
        }
    )
    assert _catalog(registry, token) == 401

"""Credential precedence and docker/podman auth file parsing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from keelhaul.client.credentials import (
    credential_files,
    credentials_from_config,
    normalize_registry_key,
    resolve_credentials,
)
from keelhaul.errors import CredentialsError

pytestmark = pytest.mark.unit

REG = "127.0.0.1:5000"
HOME = Path("/home/u")


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _reader(files: Mapping[Path, object]) -> Callable[[Path], str]:
    def read(path: Path) -> str:
        if path not in files:
            raise FileNotFoundError(path)
        return json.dumps(files[path]) if not isinstance(files[path], str) else str(files[path])

    return read


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("quay.io/org", "quay.io"),
    ],
)
def test_normalize(key: str, host: str) -> None:
    assert normalize_registry_key(key) == host


def test_file_order() -> None:
    env = {"REGISTRY_AUTH_FILE": "/a.json", "XDG_RUNTIME_DIR": "/run/u", "DOCKER_CONFIG": "/d"}
    assert credential_files(env, HOME, None) == [
        Path("/a.json"),
        Path("/run/u/containers/auth.json"),
        Path("/d/config.json"),
    ]
    assert credential_files({}, HOME, Path("/x.json")) == [
        Path("/x.json"),
        HOME / ".docker/config.json",
    ]


def test_auth_entry_and_username_password_entry() -> None:
    doc = {"auths": {f"http://{REG}": {"auth": _auth("alice", "p:w")}}}
    creds = credentials_from_config(doc, REG, "f.json")
    assert creds is not None and (creds.username, creds.password) == ("alice", "p:w")
    assert "p:w" not in repr(creds)
    doc2 = {"auths": {REG: {"username": "bob", "password": "x"}}}
    found = credentials_from_config(doc2, REG, "f")
    assert found is not None and found.username == "bob"
    assert credentials_from_config({"auths": {"other:1": {}}}, REG, "f") is None


def test_identity_token() -> None:
    doc = {"auths": {REG: {"auth": _auth("alice", ""), "identitytoken": "refresh-me"}}}
    creds = credentials_from_config(doc, REG, "f")
    assert creds is not None
    assert (creds.username, creds.password, creds.identity_token) == ("alice", None, "refresh-me")


def test_helpers_are_named_not_run() -> None:
    with pytest.raises(CredentialsError, match="docker-credential-pass"):
        credentials_from_config({"credHelpers": {REG: "pass"}}, REG, "f")
    with pytest.raises(CredentialsError, match="credential store docker-credential-desktop"):
        credentials_from_config({"credsStore": "desktop", "auths": {REG: {}}}, REG, "f")
    # a store for other registries does not stop anonymous access to this one
    assert credentials_from_config({"credsStore": "desktop", "auths": {}}, REG, "f") is None


def test_bad_auth_value() -> None:
    with pytest.raises(CredentialsError, match="not base64"):
        credentials_from_config({"auths": {REG: {"auth": _auth("nocolon", "")[:-4]}}}, REG, "f")


def test_precedence_flags_env_files() -> None:
    env = {
        "KEELHAUL_REGISTRY_USERNAME": "envuser",
        "KEELHAUL_REGISTRY_PASSWORD": "envpw",
        "DOCKER_CONFIG": "/d",
    }
    files = {Path("/d/config.json"): {"auths": {REG: {"auth": _auth("fileuser", "x")}}}}
    read = _reader(files)
    flags = resolve_credentials(REG, username="f", password="p", environ=env, home=HOME, read=read)
    assert (flags.username, flags.source) == ("f", "flags")
    from_env = resolve_credentials(REG, environ=env, home=HOME, read=read)
    assert (from_env.username, from_env.source) == ("envuser", "environment")
    from_file = resolve_credentials(REG, environ={"DOCKER_CONFIG": "/d"}, home=HOME, read=read)
    assert (from_file.username, from_file.source) == ("fileuser", "/d/config.json")
    nothing = resolve_credentials(REG, environ={}, home=HOME, read=read)
    assert nothing.anonymous


def test_podman_file_before_docker() -> None:
    env = {"XDG_RUNTIME_DIR": "/run/u"}
    files = {
        Path("/run/u/containers/auth.json"): {"auths": {REG: {"auth": _auth("podman", "x")}}},
        HOME / ".docker/config.json": {"auths": {REG: {"auth": _auth("docker", "x")}}},
    }
    assert (
        resolve_credentials(REG, environ=env, home=HOME, read=_reader(files)).username == "podman"
    )


def test_resolution_errors() -> None:
    read = _reader({Path("/bad.json"): "{nope"})
    with pytest.raises(CredentialsError, match="needs --password"):
        resolve_credentials(REG, username="u", environ={}, home=HOME, read=read)
    with pytest.raises(CredentialsError, match="PASSWORD is not"):
        resolve_credentials(REG, environ={"KEELHAUL_REGISTRY_USERNAME": "u"}, home=HOME, read=read)
    with pytest.raises(CredentialsError, match="not valid JSON"):
        resolve_credentials(REG, environ={}, home=HOME, authfile=Path("/bad.json"), read=read)
    with pytest.raises(CredentialsError, match="does not exist"):
        resolve_credentials(REG, environ={}, home=HOME, authfile=Path("/none.json"), read=read)

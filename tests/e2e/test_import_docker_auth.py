"""``keelhaul auth import-docker-auth`` on docker_auth's own examples, as an operator runs it,
then the converted configuration serving tokens (the example's bcrypt passwords)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from keelhaul.auth.app import create_app, shutdown
from keelhaul.auth.keygen import generate_keypair
from keelhaul.auth.settings import load_auth_settings
from support.stacks import keelhaul

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data" / "docker_auth"


def test_reference_yml_lists_everything_left_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = keelhaul("auth", "import-docker-auth", str(DATA / "reference.yml"), "--out", str(out))
    assert result.returncode == 8, result.stderr
    assert "Traceback" not in result.stderr
    for section in ("google_auth", "github_auth", "gitlab_auth", "oidc_auth", "ldap_auth",
                    "mongo_auth", "xorm_auth", "ext_auth", "plugin_authn", "acl_mongo",
                    "acl_xorm", "casbin_authz", "ext_authz", "plugin_authz", "token.service",
                    "server TLS"):  # fmt: skip
        assert f"  - {section}" in result.stderr, section
    config = yaml.safe_load((out / "auth.yml").read_text())
    assert len(config["acl"]) == 18
    assert stat.S_IMODE((out / "auth.yml").stat().st_mode) == 0o600
    again = keelhaul("auth", "import-docker-auth", str(DATA / "reference.yml"), "--out", str(out))
    assert again.returncode == 1 and "exists" in again.stderr  # never overwritten


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_simple_yml_converted_serves_the_same_grants(tmp_path: Path) -> None:
    pair = generate_keypair(tmp_path / "keys")
    docker: dict[str, Any] = yaml.safe_load((DATA / "simple.yml").read_text())
    docker["server"] = {"addr": ":5001"}  # TLS ends at the proxy in front of keelhaul
    docker["token"]["certificate"], docker["token"]["key"] = str(pair.cert), str(pair.key)
    given = tmp_path / "docker_auth.yml"
    given.write_text(yaml.safe_dump(docker))
    out = tmp_path / "out"
    result = keelhaul("auth", "import-docker-auth", str(given), "--out", str(out),
                      "--service", "registry.example")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 users" in result.stdout
    assert stat.S_IMODE((out / "htpasswd").stat().st_mode) == 0o600

    app = create_app(load_auth_settings(out / "auth.yml", environ={}))
    try:
        client = app.test_client()

        def access(headers: dict[str, str]) -> list[Any]:
            r = client.get(
                "/token?service=registry.example&scope=repository:team/app:pull,push",
                headers=headers,
            )
            assert r.status_code == 200, r.get_data(as_text=True)
            claims = jwt.decode(r.get_json()["token"], options={"verify_signature": False})
            actions: list[Any] = claims["access"][0]["actions"] if claims["access"] else []
            return actions

        assert access(basic("admin", "badmin")) == ["pull", "push"]
        assert access(basic("test", "123")) == ["pull"]
        assert access({}) == []  # no "" user in docker_auth: anonymous gets nothing
        wrong = client.get("/token?service=registry.example", headers=basic("test", "nope"))
        assert wrong.status_code == 401
    finally:
        shutdown(app)

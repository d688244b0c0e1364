"""The token endpoint over HTTP semantics (Flask test client; real keys, files, bcrypt)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient

from keelhaul.auth.app import create_app, shutdown
from keelhaul.auth.signing import KeyRing
from support.tokenverify import verify

pytestmark = pytest.mark.integration


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def client(auth_env) -> Iterator[FlaskClient]:  # type: ignore[no-untyped-def]
    app = create_app(auth_env.settings())
    yield app.test_client()
    shutdown(app)


def test_token_response_shape_and_claims(client: FlaskClient, auth_env) -> None:  # type: ignore[no-untyped-def]
    r = client.get(
        "/token?service=test-registry&scope=repository:alice/app:pull,push&account=alice",
        headers=basic("alice", "alice-pw"),
    )
    assert r.status_code == 200
    body = r.get_json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] >= 60
    assert body["issued_at"].endswith("Z")
    assert "refresh_token" not in body
    ring = KeyRing.from_settings(auth_env.settings().token)
    claims = verify(body["token"], ring, audience="test-registry", issuer="test-issuer")
    assert claims["sub"] == "alice"
    assert claims["access"] == [
        {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}
    ]
    for key in ("exp", "nbf", "iat", "jti"):
        assert key in claims
    header = jwt.get_unverified_header(body["token"])
    assert header["kid"] and header["x5c"] and header["alg"] == "ES256"


def test_partial_grant_is_not_an_error(client: FlaskClient) -> None:
    r = client.get(
        "/token?service=test-registry&scope=repository:team/app:pull,push,delete",
        headers=basic("reader", "reader-pw"),
    )
    assert r.status_code == 200
    assert claims_of(r.get_json()["token"])["access"][0]["actions"] == ["pull"]


def test_several_scopes_and_catalog(client: FlaskClient) -> None:
    r = client.get(
        "/token?service=test-registry&scope=registry:catalog:*"
        "&scope=repository:a:pull repository:b:push",
        headers=basic("admin", "admin-pw"),
    )
    access = claims_of(r.get_json()["token"])["access"]
    assert [(a["type"], a["name"], a["actions"]) for a in access] == [
        ("registry", "catalog", ["*"]),
        ("repository", "a", ["pull"]),
        ("repository", "b", ["push"]),
    ]


def test_anonymous_gets_only_what_acl_gives_anonymous(client: FlaskClient) -> None:
    r = client.get(
        "/token?service=test-registry&scope=repository:public/x:pull,push"
        "&scope=repository:private/x:pull"
    )
    claims = claims_of(r.get_json()["token"])
    assert claims["sub"] == ""
    assert [a["actions"] for a in claims["access"]] == [["pull"], []]


@pytest.mark.parametrize(
    ("query", "headers", "status", "code"),
    [
        ("/token?scope=repository:a:pull", {}, 400, "INVALID_REQUEST"),  # no service
        ("/token?service=other", {}, 400, "INVALID_REQUEST"),
        ("/token?service=test-registry&scope=repository:a", {}, 400, "INVALID_SCOPE"),
        ("/token?service=test-registry&scope=repository:x/UPPER:pull", {}, 400, "INVALID_SCOPE"),
        (
            "/token?service=test-registry&scope="
            + " ".join(f"repository:a{i}:pull" for i in range(40)),
            {},
            400,
            "INVALID_SCOPE",
        ),
        (
            "/token?service=test-registry&scope=repository:" + "a" * 600 + ":pull",
            {},
            400,
            "INVALID_SCOPE",
        ),
        ("/token?service=test-registry", {"Authorization": "Basic %%%"}, 400, "INVALID_REQUEST"),
        ("/token?service=test-registry", {"Authorization": "Bearer abc"}, 400, "INVALID_REQUEST"),
        (
            "/token?service=test-registry",
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            400,
            "INVALID_REQUEST",
        ),
        ("/token?service=test-registry", basic("alice", "wrong"), 401, "UNAUTHORIZED"),
        ("/token?service=test-registry", basic("nobody", "x"), 401, "UNAUTHORIZED"),
        (
            "/token?service=test-registry&account=bob",
            basic("alice", "alice-pw"),
            400,
            "INVALID_REQUEST",
        ),
        ("/token?service=test-registry&x=" + "a" * 7000, {}, 413, "SIZE_INVALID"),
        ("/nope", {}, 404, "NOT_FOUND"),
    ],
)
def test_bad_input_gets_docker_error_body(
    client: FlaskClient, query: str, headers: dict[str, str], status: int, code: str
) -> None:
    r = client.get(query, headers=headers)
    assert r.status_code == status
    body = r.get_json()
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["message"]
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "Traceback" not in r.get_data(as_text=True)


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        (
            {"grant_type": "client_credentials", "service": "test-registry", "client_id": "t"},
            400,
            "UNSUPPORTED",
        ),
        ({"service": "test-registry", "client_id": "t"}, 400, "INVALID_REQUEST"),
        (
            {"grant_type": "password", "service": "test-registry", "username": "alice"},
            400,
            "INVALID_REQUEST",
        ),
        (
            {
                "grant_type": "password",
                "service": "test-registry",
                "client_id": "t",
                "username": "alice",
                "password": "bad",
            },
            401,
            "UNAUTHORIZED",
        ),
        (
            {
                "grant_type": "refresh_token",
                "service": "test-registry",
                "client_id": "t",
                "refresh_token": "forged",
            },
            401,
            "UNAUTHORIZED",
        ),
        (
            {"grant_type": "refresh_token", "service": "test-registry", "client_id": "t"},
            400,
            "INVALID_REQUEST",
        ),
    ],
)
def test_bad_oauth2_forms(
    client: FlaskClient, form: dict[str, str], status: int, code: str
) -> None:
    r = client.post("/token", data=form)
    assert r.status_code == status
    assert r.get_json()["errors"][0]["code"] == code


def test_post_requires_form_body_and_limits_size(client: FlaskClient) -> None:
    r = client.post(
        "/token", data=json.dumps({"grant_type": "password"}), content_type="application/json"
    )
    assert r.status_code == 400
    r = client.post("/token", data={"grant_type": "password", "password": "x" * 40000})
    assert r.status_code == 413
    assert r.get_json()["errors"][0]["code"] == "SIZE_INVALID"


def test_oauth2_password_then_refresh_then_revocation(client: FlaskClient, auth_env) -> None:  # type: ignore[no-untyped-def]
    form = {
        "grant_type": "password",
        "service": "test-registry",
        "client_id": "tests",
        "username": "alice",
        "password": "alice-pw",
        "access_type": "offline",
        "scope": "repository:alice/x:pull",
    }
    r = client.post("/token", data=form)
    assert r.status_code == 200
    body = r.get_json()
    assert body["refresh_token"] and body["scope"] == "repository:alice/x:pull"
    refresh = {
        "grant_type": "refresh_token",
        "service": "test-registry",
        "client_id": "tests",
        "refresh_token": body["refresh_token"],
        "scope": "repository:alice/x:push",
    }
    r2 = client.post("/token", data=refresh)
    assert r2.status_code == 200
    assert claims_of(r2.get_json()["access_token"])["sub"] == "alice"
    # offline_token on GET, as `docker login` asks
    r3 = client.get(
        "/token?service=test-registry&offline_token=true&client_id=docker",
        headers=basic("alice", "alice-pw"),
    )
    assert r3.get_json()["refresh_token"]
    # changing the password revokes the refresh token (within the reload interval, 50 ms here)
    import time

    auth_env.write_users({"alice": "new-password", "admin": "admin-pw"})
    time.sleep(0.2)
    r4 = client.post("/token", data=refresh)
    assert r4.status_code == 401
    assert "revoked" in r4.get_json()["errors"][0]["message"]


def test_health_metrics_and_audit_without_secrets(client: FlaskClient, auth_env) -> None:  # type: ignore[no-untyped-def]
    client.get(
        "/token?service=test-registry&scope=repository:alice/x:pull",
        headers=basic("alice", "alice-pw"),
    )
    client.get(
        "/token?service=test-registry&scope=repository:alice/x:pull",
        headers=basic("alice", "alice-pw"),
    )
    client.get("/token?service=test-registry", headers=basic("alice", "wrong-pw"))
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["checks"]["users.htpasswd"]["ok"]
    text = client.get("/metrics").get_data(as_text=True)
    assert 'keelhaul_token_requests_total{grant="basic",outcome="issued"} 2.0' in text
    assert 'keelhaul_token_requests_total{grant="basic",outcome="unauthorized"} 1.0' in text
    assert 'keelhaul_token_stage_seconds_count{cache="miss",stage="authn"} 1.0' in text
    assert 'keelhaul_token_stage_seconds_count{cache="local",stage="authn"} 1.0' in text
    assert "keelhaul_credential_cache_hit_ratio 0.500000" in text
    assert "keelhaul_token_worker_capacity 1000.0" in text  # gevent: worker_connections
    assert "keelhaul_token_inflight_requests 0.0" in text
    lines = [json.loads(x) for x in (auth_env.dir / "audit.log").read_text().splitlines()]
    assert [x["outcome"] for x in lines] == ["issued", "issued", "unauthorized"]
    assert lines[0]["account"] == "alice" and lines[0]["granted"] == ["repository:alice/x:pull"]
    assert {"client_ip", "requested", "duration_ms", "status"} <= set(lines[0])
    raw = (auth_env.dir / "audit.log").read_text()
    assert "alice-pw" not in raw and "wrong-pw" not in raw

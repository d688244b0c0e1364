"""CI identity tokens: a loopback issuer (discovery + JWKS), keys made and rotated here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient

from keelhaul.auth.app import create_app, shutdown
from support.oidc_issuer import AUD, Issuer

pytestmark = pytest.mark.integration


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    server.add_key("k1")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(auth_env, issuer: Issuer) -> Iterator[FlaskClient]:  # type: ignore[no-untyped-def]
    users = [
        {"kind": "htpasswd", "path": str(auth_env.htpasswd)},
        issuer.backend(
            require={"repository_owner": ["team"], "job_workflow_ref_ok": [True]}, leeway=5
        ),
    ]
    acl = [  # jobs of repository X on protected branches may push to X
        {
            "match": {"labels": {"protected": "true"}, "name": "${labels:repository}"},
            "actions": ["pull", "push"],
        },
        {"match": {"account": "/.+/"}, "actions": ["pull"]},
    ]
    app = create_app(auth_env.settings(users=users, acl=acl))
    yield app.test_client()
    shutdown(app)


def login(client: FlaskClient, token: str, user: str = "anything") -> Any:
    basic = base64.b64encode(f"{user}:{token}".encode()).decode()
    return client.get(
        "/token?service=test-registry&scope=repository:team/app:pull,push&account=" + user,
        headers={"Authorization": f"Basic {basic}"},
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_job_token_gets_what_its_claims_allow(
    client: FlaskClient, issuer: Issuer, auth_env
) -> None:  # type: ignore[no-untyped-def]
    r = login(client, issuer.sign())
    assert r.status_code == 200, r.get_json()
    claims = jwt.decode(r.get_json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "ci:team/app"
    assert claims["access"][0]["actions"] == ["pull", "push"]
    unprotected = login(client, issuer.sign(ref_protected=False))
    access = jwt.decode(unprotected.get_json()["token"], options={"verify_signature": False})
    assert access["access"][0]["actions"] == ["pull"]
    lines = [json.loads(x) for x in Path(auth_env.dir / "audit.log").read_text().splitlines()]
    assert lines[0]["account"] == "ci:team/app" and lines[0]["backend"] == "ci"
    # which job it was: the verified claims the issuer put in the token
    assert lines[0]["identity"]["sub"] == "repo:team/app:ref:refs/heads/main"
    assert lines[0]["identity"]["ref"] == "refs/heads/main"
    assert lines[0]["identity"]["jti"].startswith("job-")
    assert "repository_owner" not in lines[0]["identity"]  # only the audit_claims


def _hs256_with_public_key(issuer: Issuer) -> str:
    pem = (
        issuer.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    now = int(time.time())
    body = b64(json.dumps({"iss": issuer.url, "aud": AUD, "repository": "team/app",
                           "iat": now, "exp": now + 300}).encode())  # fmt: skip
    sig = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def _alg_none(issuer: Issuer) -> str:
    head = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    now = int(time.time())
    body = b64(json.dumps({"iss": issuer.url, "aud": AUD, "repository": "team/app",
                           "iat": now, "exp": now + 300}).encode())  # fmt: skip
    return f"{head}.{body}."


def _tampered(issuer: Issuer) -> str:
    head, body, sig = issuer.sign().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["repository"] = "team/other"
    return f"{head}.{b64(json.dumps(claims).encode())}.{sig}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda i: i.sign(exp=int(time.time()) - 60), "expired"),
        (lambda i: i.sign(nbf=int(time.time()) + 600), "not yet valid"),
        (lambda i: i.sign(aud="another-registry"), "audience not accepted"),
        (lambda i: i.sign(iss="https://evil.example.com"), "issuer not trusted"),
        (
            lambda i: (i.add_key("rogue", publish=False), i.sign("rogue"))[1],
            "unknown signing key (kid)",
        ),
        (_alg_none, "algorithm 'none' not allowed"),
        (_hs256_with_public_key, "algorithm 'HS256' not allowed"),
        (_tampered, "bad signature"),
        (
            lambda i: i.sign(repository_owner="evil"),
            "claim 'repository_owner' does not satisfy the rules",
        ),
        (
            lambda i: i.sign(job_workflow_ref_ok=False),
            "claim 'job_workflow_ref_ok' does not satisfy the rules",
        ),
    ],
)
def test_each_bad_token_is_a_401_with_its_reason_and_an_audit_line(
    client: FlaskClient,
    issuer: Issuer,
    auth_env,  # type: ignore[no-untyped-def]
    make: Any,
    reason: str,
) -> None:
    r = login(client, make(issuer))
    assert r.status_code == 401
    error = r.get_json()["errors"][0]
    assert (
        error["code"] == "UNAUTHORIZED" and error["message"] == f"identity token refused: {reason}"
    )
    line = json.loads(Path(auth_env.dir / "audit.log").read_text().splitlines()[-1])
    assert line["status"] == 401 and line["outcome"] != "issued"


def test_key_rotation_and_the_issuer_being_down(client: FlaskClient, issuer: Issuer) -> None:
    assert login(client, issuer.sign("k1")).status_code == 200
    issuer.add_key("k2")  # rotation: a new kid makes the service fetch the JWKS again
    assert login(client, issuer.sign("k2")).status_code == 200
    fetched = issuer.requests
    assert login(client, issuer.sign("k2")).status_code == 200
    assert issuer.requests == fetched  # a known kid is served from the cache
    issuer.stop()  # the issuer goes away: cached keys still verify
    assert login(client, issuer.sign("k1")).status_code == 200
    health = client.get("/healthz").get_json()
    assert health["checks"]["users.ci"]["ok"]


def test_settings_refuse_symmetric_and_none_algorithms(auth_env) -> None:  # type: ignore[no-untyped-def]
    from keelhaul.errors import ConfigError

    for alg in ("HS256", "none"):
        with pytest.raises(ConfigError, match=f"users.0.oidc.algorithms: {alg} is not allowed"):
            auth_env.settings(
                users=[{"kind": "oidc", "issuer": "x", "audiences": ["a"], "algorithms": [alg]}]
            )


def test_an_identity_token_login_gets_no_refresh_token(client: FlaskClient, issuer: Issuer) -> None:
    """docker login's OAuth2 password grant asks for a refresh token (access_type=offline):
    none for a CI token, which must not outlive the job; htpasswd users still get one."""
    form = {
        "grant_type": "password",
        "service": "test-registry",
        "client_id": "docker",
        "access_type": "offline",
        "scope": "repository:team/app:pull",
    }
    ci = client.post("/token", data=form | {"username": "ci", "password": issuer.sign()})
    assert ci.status_code == 200, ci.get_json()
    assert "refresh_token" not in ci.get_json() and ci.get_json()["token"]
    user = client.post("/token", data=form | {"username": "alice", "password": "alice-pw"})
    assert user.status_code == 200 and user.get_json()["refresh_token"]


def test_ci_logins_are_not_throttled_by_another_clients_failures(
    auth_env,  # type: ignore[no-untyped-def]
    issuer: Issuer,
) -> None:
    """A runner's address shared with a client guessing passwords under the same account
    name: the guesser is throttled, the job's identity token still logs in."""
    users = [{"kind": "htpasswd", "path": str(auth_env.htpasswd)}, issuer.backend(leeway=5)]
    throttle = {"max_failures": 2, "max_failures_per_ip": 2, "base_delay": 30, "max_delay": 300}
    app = create_app(auth_env.settings(users=users, throttle=throttle))
    client = app.test_client()
    try:
        assert [login(client, f"guess-{i}", user="ci").status_code for i in range(3)] == [
            401,
            401,
            429,
        ]
        assert login(client, "guess-3", user="alice").status_code == 429  # the address too
        r = login(client, issuer.sign(), user="ci")
        assert r.status_code == 200, r.get_json()
    finally:
        shutdown(app)

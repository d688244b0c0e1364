"""The LDAP backend against a real slapd (started here on loopback), through the token endpoint."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from ldap3 import MODIFY_REPLACE, Connection, Server

from keelhaul.auth.app import create_app, shutdown
from keelhaul.stack.tls import load_or_create_ca
from support.slapd import (
    PEOPLE,
    ROOT_DN,
    ROOT_PW,
    SERVICE_DN,
    SlapdServer,
    start_slapd,
)

pytestmark = pytest.mark.integration


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()


def ldap_backend(slapd: SlapdServer, **over: Any) -> dict[str, Any]:
    return slapd.backend(timeout=1, connect_timeout=1, retry_interval=1, **over)


ACL = [
    {"match": {"labels": {"group": "engineering"}, "name": "eng/**"}, "actions": ["pull", "push"]},
    {"match": {"account": "/.+/", "name": "eng/**"}, "actions": ["pull"]},
]


@pytest.fixture
def app_for(auth_env) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    apps: list[Flask] = []
    auth_env.write_users({"admin": "admin-pw"})  # local users first, LDAP users after them

    def make(*backends: dict[str, Any], **over: Any) -> FlaskClient:
        users = [{"kind": "htpasswd", "path": str(auth_env.htpasswd)}, *backends]
        app = create_app(auth_env.settings(users=users, acl=ACL, **over))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        shutdown(app)


def token(
    client: FlaskClient, user: str, password: str, scope: str = "repository:eng/app:pull,push"
) -> Any:
    return client.get(f"/token?service=test-registry&scope={scope}", headers=basic(user, password))


def access(response: Any) -> list[str]:
    claims = jwt.decode(response.get_json()["token"], options={"verify_signature": False})
    return [a for entry in claims["access"] for a in entry["actions"]]


def test_login_token_wrong_password_and_group_label_rule(app_for, slapd: SlapdServer) -> None:  # type: ignore[no-untyped-def]
    client = app_for(ldap_backend(slapd))
    alice = token(client, "alice", "alice-ldap-pw")
    assert alice.status_code == 200
    assert access(alice) == ["pull", "push"]  # engineering, through developers (nested)
    bob = token(client, "bob", "bob-ldap-pw")
    assert bob.status_code == 200 and access(bob) == ["pull"]  # in no group
    wrong = token(client, "alice", "not-her-password")
    assert wrong.status_code == 401
    assert wrong.get_json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert token(client, "alice", "").status_code == 401  # never an unauthenticated bind
    assert token(client, "nobody", "x").status_code == 401
    assert token(client, "*", "x").status_code == 401  # the filter is escaped


def test_filter_injection_is_escaped(app_for, slapd: SlapdServer) -> None:  # type: ignore[no-untyped-def]
    client = app_for(ldap_backend(slapd))
    for name in ("alice)(uid=*", "*)(|(uid=*", "al*"):
        assert token(client, name, "alice-ldap-pw").status_code == 401


def test_verified_login_is_cached_and_never_touches_the_directory(
    app_for, slapd: SlapdServer
) -> None:  # type: ignore[no-untyped-def]
    client = app_for(ldap_backend(slapd))
    assert token(client, "carol", "carol-ldap-pw").status_code == 200
    before = slapd.accepted()
    slapd.pause()  # a second login that touched the directory would now fail
    try:
        again = token(client, "carol", "carol-ldap-pw")
    finally:
        slapd.resume()
    assert again.status_code == 200 and access(again) == ["pull", "push"]
    assert slapd.accepted() == before


def test_tls_ldaps_and_starttls_verify_the_server(
    app_for, slapd: SlapdServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ldaps = app_for(ldap_backend(slapd, servers=[slapd.tls_url], ca_file=str(slapd.ca)))
    assert token(ldaps, "bob", "bob-ldap-pw").status_code == 200
    starttls = app_for(ldap_backend(slapd, start_tls=True, ca_file=str(slapd.ca)))
    assert token(starttls, "bob", "bob-ldap-pw").status_code == 200
    load_or_create_ca(tmp_path / "other.crt", tmp_path / "other.key")
    untrusted = app_for(
        ldap_backend(slapd, servers=[slapd.tls_url], ca_file=str(tmp_path / "other.crt"))
    )
    refused = token(untrusted, "bob", "bob-ldap-pw")
    assert refused.status_code == 503
    assert refused.get_json()["errors"][0]["code"] == "UNAVAILABLE"


def test_failover_to_the_next_server(app_for, slapd: SlapdServer) -> None:  # type: ignore[no-untyped-def]
    from keelhaul.netutil import free_port

    dead = f"ldap://127.0.0.1:{free_port()}"  # nothing listens there
    client = app_for(ldap_backend(slapd, servers=[dead, slapd.url]))
    assert token(client, "bob", "bob-ldap-pw").status_code == 200


def test_password_change_revokes_the_cached_login(app_for, slapd: SlapdServer) -> None:  # type: ignore[no-untyped-def]
    client = app_for(ldap_backend(slapd, lookup_ttl=0))  # every lookup asks the directory
    assert token(client, "bob", "bob-ldap-pw").status_code == 200
    root = Connection(Server("127.0.0.1", port=slapd.port), ROOT_DN, ROOT_PW, auto_bind=True)
    try:
        root.modify(f"uid=bob,{PEOPLE}", {"userPassword": [(MODIFY_REPLACE, ["bob-new-pw"])]})
        assert token(client, "bob", "bob-ldap-pw").status_code == 401
        assert token(client, "bob", "bob-new-pw").status_code == 200
    finally:
        root.modify(f"uid=bob,{PEOPLE}", {"userPassword": [(MODIFY_REPLACE, ["bob-ldap-pw"])]})
        root.unbind()


def test_stopped_directory_is_503_and_degraded_while_cached_users_go_on(
    app_for, slapd: SlapdServer
) -> None:  # type: ignore[no-untyped-def]
    client = app_for(ldap_backend(slapd))
    assert token(client, "alice", "alice-ldap-pw").status_code == 200  # cached from now on
    slapd.pause()
    try:
        stalled = token(client, "bob", "bob-ldap-pw")
        assert stalled.status_code == 503
        body = stalled.get_json()
        assert (
            body["errors"][0]["code"] == "UNAVAILABLE"
            and "try again" in body["errors"][0]["message"]
        )
        health = client.get("/healthz").get_json()
        assert health["status"] == "degraded" and not health["checks"]["users.ldap"]["ok"]
        assert token(client, "admin", "admin-pw").status_code == 200  # htpasswd user
        assert token(client, "alice", "alice-ldap-pw").status_code == 200  # cached LDAP user
    finally:
        slapd.resume()


def test_service_searches_use_a_bounded_pool_of_connections(slapd: SlapdServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from keelhaul.auth.authn.ldap import LdapDirectory
    from keelhaul.auth.authn.options import LdapOptions

    directory = LdapDirectory(
        LdapOptions.model_validate(ldap_backend(slapd, pool_size=2, lookup_ttl=0))
    )
    try:
        before = slapd.binds(SERVICE_DN)
        names = ["alice", "bob", "carol", "nobody"] * 10
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = list(pool.map(directory.lookup, names))
        assert [a.name if a else None for a in found] == [
            n if n != "nobody" else None for n in names
        ]
        assert directory.searches == len(names)
        # 40 searches from 8 threads over 2 service connections (ldap3's ServerPool also
        # opens a bare TCP probe per new connection: those bind nothing)
        assert slapd.binds(SERVICE_DN) - before == 2
    finally:
        directory.close()


def test_a_pooled_connection_the_server_closed_is_replaced_not_an_outage(
    tmp_path: Path,
) -> None:
    import time

    from keelhaul.auth.authn.ldap import LdapDirectory
    from keelhaul.auth.authn.options import LdapOptions

    server = start_slapd(tmp_path / "slapd", idletimeout=1)
    directory = LdapDirectory(
        LdapOptions.model_validate(ldap_backend(server, pool_size=1, lookup_ttl=0))
    )
    try:
        assert directory.lookup("bob") is not None
        before = server.binds(SERVICE_DN)
        deadline = time.monotonic() + 30  # wait until slapd has dropped the idle connection
        while "closed (idletimeout)" not in server.log.read_text(errors="replace"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert directory.lookup("bob") is not None  # on a new connection, no 503
        assert server.binds(SERVICE_DN) == before + 1
        assert directory.health()[0]
    finally:
        directory.close()
        server.stop()


def test_a_name_in_any_case_is_one_account(app_for, slapd: SlapdServer) -> None:  # type: ignore[no-untyped-def]
    """The directory matches uid without case: the account is the lower-cased name, so the
    ACL, the audit line and the per-account throttle see one alice, however it is typed."""
    throttle = {"max_failures": 3, "max_failures_per_ip": 100, "base_delay": 60}
    client = app_for(ldap_backend(slapd), throttle=throttle)
    r = client.get(
        "/token?service=test-registry&scope=repository:eng/app:pull,push&account=ALICE",
        headers=basic("ALICE", "alice-ldap-pw"),
    )
    assert r.status_code == 200, r.get_json()
    claims = jwt.decode(r.get_json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "alice" and access(r) == ["pull", "push"]
    assert [token(client, name, "wrong").status_code for name in ("Alice", "aLice", "alIce")] == [
        401
    ] * 3
    assert token(client, "aliCE", "wrong").status_code == 429  # the same account's 4th failure
    sensitive = app_for(ldap_backend(slapd, case_insensitive_names=False))
    r = token(sensitive, "ALICE", "alice-ldap-pw")
    claims = jwt.decode(r.get_json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "ALICE"

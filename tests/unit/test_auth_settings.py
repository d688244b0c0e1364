"""Settings validation: every problem names its key and says what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keelhaul.auth.serve import gunicorn_options
from keelhaul.auth.settings import (
    LimitSettings,
    ServerSettings,
    load_auth_settings,
    load_with_overrides,
)
from keelhaul.errors import ConfigError

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "secret": "s" * 40,
    "token": {"issuer": "i", "service": "s", "keys": [{"key": "k.pem", "cert": "c.pem"}]},
}


def problems(data: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_auth_settings(data=data, environ=environ or {})
    return caught.value.problems


def with_(**sections: Any) -> dict[str, Any]:
    return {**BASE, **sections}


def test_required_keys_are_named() -> None:
    found = problems({"token": {}})
    assert "secret: is required" in found
    assert "token.issuer: is required" in found
    assert "token.service: is required" in found
    assert "token.keys: is required" in found


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (with_(secret="short"), "secret: must be at least 32 characters; generate one with"),
        (with_(token={**BASE["token"], "expiration": 30}), "token.expiration:"),
        (with_(token={**BASE["token"], "algorithm": "HS256"}), "token.algorithm:"),
        (
            with_(acl=[{"match": {"name": "/[/"}, "actions": ["pull"]}]),
            "acl.0.match.name: invalid regular",
        ),
        (
            with_(acl=[{"match": {"ip": "10.0.0.300/8"}, "actions": []}]),
            "acl.0.match.ip: not an IP network",
        ),
        (with_(acl=[{"match": {"acount": "x"}, "actions": []}]), "acl.0.match.acount: unknown key"),
        (with_(cache={"redis_url": "http://x"}), "cache.redis_url: must start with redis://"),
        (with_(server={"worker_class": "eventlet"}), "server.worker_class:"),
        (
            with_(users={"static": {"a": {"password_hash": "plain"}}}),
            "users.static.a.password_hash: must be a bcrypt",
        ),
        (with_(tokens={}), "tokens: unknown key"),
    ],
)
def test_each_problem_names_its_key(data: dict[str, Any], expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(data)), problems(data)


def test_secrets_never_appear_in_messages_or_repr() -> None:
    found = problems(
        with_(secret="hunter2-but-short", cache={"redis_url": "http://user:pa55w0rd@x"})
    )
    assert not any("hunter2" in p or "pa55w0rd" in p for p in found)
    settings = load_auth_settings(
        data=with_(cache={"redis_url": "redis://:pa55w0rd@h:6379/1"}), environ={}
    )
    assert "pa55w0rd" not in repr(settings) and "s" * 40 not in repr(settings)


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "auth.yml"
    path.write_text(yaml.safe_dump(with_(server={"workers": 3, "bind": "127.0.0.1:1"})))
    env = {
        "KEELHAUL_AUTH_SERVER__WORKERS": "5",
        "KEELHAUL_AUTH_TOKEN__EXPIRATION": "600",
        "KEELHAUL_AUTH_ACL": '[{"match": {"account": "a"}, "actions": ["pull"]}]',
    }
    settings = load_auth_settings(path, environ=env)
    assert settings.server.workers == 5 and settings.token.expiration == 600
    assert settings.acl[0].match.account == "a"
    import os

    old = dict(os.environ)
    try:
        os.environ.update(env)
        overridden = load_with_overrides(path, {"workers": 7, "timeout": None})
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert overridden.server.workers == 7 and overridden.server.bind == "127.0.0.1:1"


def test_bad_yaml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("token: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_auth_settings(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_auth_settings(tmp_path / "nope.yml", environ={})


def test_gunicorn_defaults_are_the_field_reports() -> None:
    opts = gunicorn_options(ServerSettings(), cpu_count=3)
    assert opts["workers"] == 6
    assert opts["worker_class"] == "keelhaul.auth.workers.JsonGeventWorker"
    assert opts["worker_connections"] == 1000 and opts["timeout"] == 180
    assert opts["control_socket_disable"] is True
    opts = gunicorn_options(
        ServerSettings(workers=2, worker_class="gthread", threads=8), cpu_count=3
    )
    assert (opts["workers"], opts["threads"]) == (2, 8)
    assert opts["worker_class"] == "keelhaul.auth.workers.JsonThreadWorker"


def test_gunicorn_limits_sit_above_the_apps() -> None:
    limits = LimitSettings(max_headers=50, max_header_bytes=20000)
    opts = gunicorn_options(ServerSettings(), limits, cpu_count=1)
    assert opts["limit_request_fields"] > limits.max_headers
    assert opts["limit_request_field_size"] > limits.max_header_bytes
    # the query limit plus "GET /token?" and " HTTP/1.1" fits gunicorn's request line
    widest = LimitSettings(max_query_bytes=7680).max_query_bytes
    assert opts["limit_request_line"] >= widest + len("GET /token? HTTP/1.1")


def test_users_as_a_list_of_kinds_and_the_old_mapping_form_agree() -> None:
    old = load_auth_settings(
        data=with_(users={"htpasswd": "/h", "order": ["htpasswd"], "labels": {"a": {"g": ["x"]}}}),
        environ={},
    )
    new = load_auth_settings(
        data=with_(users=[{"kind": "htpasswd", "path": "/h", "labels": {"a": {"g": ["x"]}}}]),
        environ={},
    )
    assert old.users == new.users


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        ([{"kind": "kerberos"}], "users.0: Input tag 'kerberos' found using 'kind' does not match"),
        ([{"path": "/h"}], "users.0: Unable to extract tag using discriminator 'kind'"),
        ([{"kind": "htpasswd"}], "users.0.htpasswd.path: is required"),
        (
            [{"kind": "htpasswd", "path": "/a"}, {"kind": "htpasswd", "path": "/b"}],
            "users: two backends are named 'htpasswd'",
        ),
        ({"order": ["ldap"]}, "users.order.0:"),
    ],
)
def test_backend_list_problems_name_their_key(users: Any, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(with_(users=users))), problems(
        with_(users=users)
    )

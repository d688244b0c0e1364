"""The stack's pure parts: plans, rendered configs, the ACL it installs, its state file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from keelhaul.auth.acl import Acl, Principal
from keelhaul.auth.scopes import parse_scope
from keelhaul.auth.settings import load_auth_settings
from keelhaul.errors import ConfigError
from keelhaul.stack.authconf import render_auth_config, render_htpasswd
from keelhaul.stack.components import component_specs
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.nginx import render_nginx_conf
from keelhaul.stack.plan import StackPlan, choose_ports
from keelhaul.stack.registry import registry_yaml, render_registry_config
from keelhaul.stack.settings import StackSettings, load_stack_settings
from keelhaul.stack.state import StackState, read_state, write_state

pytestmark = pytest.mark.unit

PORTS = {
    "redis": 7001,
    "auth": 7002,
    "registry": 7003,
    "registry_debug": 7004,
    "nginx": 7005,
    "nginx_status": 7006,
}
BINARIES = {
    "redis-server": "/usr/bin/redis-server",
    "docker-registry": "/usr/bin/docker-registry",
    "nginx": "/usr/sbin/nginx",
}
LAYOUT = StackLayout(Path("/srv/stack"))


def _plan(settings: StackSettings | None = None) -> StackPlan:
    settings = settings or StackSettings()
    ports = {k: v for k, v in PORTS.items() if settings.redis or k != "redis"}
    return StackPlan.local(LAYOUT, settings, ports)


# ----------------------------------------------------------------- registry config


def test_registry_config_uses_token_auth_through_the_proxy() -> None:
    config = render_registry_config(_plan(), http_secret="s" * 32)
    assert config["auth"] == {
        "token": {
            "realm": "http://127.0.0.1:7005/token",
            "service": "keelhaul-registry",
            "issuer": "keelhaul-auth",
            "rootcertbundle": "/srv/stack/keys/bundle.pem",
            "signingalgorithms": ["ES256"],
        }
    }
    assert render_auth_config(_plan(), secret=None)["token"]["algorithm"] == "ES256"


def test_registry_config_storage_delete_and_redis_cache() -> None:
    config = render_registry_config(_plan(), http_secret="s" * 32)
    assert config["storage"]["filesystem"] == {"rootdirectory": "/srv/stack/data"}
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["cache"] == {"blobdescriptor": "redis"}
    redis = config["redis"]
    assert redis["addr"] == "127.0.0.1:7001"
    assert redis["db"] == 0
    assert {"dialtimeout", "readtimeout", "writetimeout"} <= set(redis)
    assert set(redis["pool"]) == {"maxidle", "maxactive", "idletimeout"}


def test_registry_config_http_and_debug_prometheus() -> None:
    config = render_registry_config(_plan(), http_secret="sekrit" * 6)
    http = config["http"]
    assert http["addr"] == "127.0.0.1:7003"
    assert http["secret"] == "sekrit" * 6
    assert http["debug"] == {
        "addr": "127.0.0.1:7004",
        "prometheus": {"enabled": True, "path": "/metrics"},
    }
    assert config["log"]["level"] == "info"


def test_registry_config_without_redis_caches_in_memory() -> None:
    config = render_registry_config(_plan(StackSettings(redis=False)), http_secret="s" * 32)
    assert config["storage"]["cache"] == {"blobdescriptor": "inmemory"}
    assert "redis" not in config


def test_registry_realm_is_https_with_tls() -> None:
    config = render_registry_config(_plan(StackSettings(tls=True)), http_secret="s" * 32)
    assert config["auth"]["token"]["realm"] == "https://127.0.0.1:7005/token"
    assert "host" not in config["http"]  # direct clients of the local registry keep working


def test_registry_yaml_round_trips_with_version_first() -> None:
    text = registry_yaml(render_registry_config(_plan(), http_secret="s" * 32))
    assert text.startswith("version: 0.1\n")
    assert yaml.safe_load(text)["version"] == 0.1


# ----------------------------------------------------------------- token service config


def test_auth_config_validates_against_the_token_service_schema() -> None:
    data = render_auth_config(_plan(), secret="x" * 64)
    settings = load_auth_settings(data=data, environ={})
    assert settings.server.bind == "127.0.0.1:7002"
    assert settings.token.issuer == "keelhaul-auth"
    assert settings.token.service == "keelhaul-registry"
    assert settings.token.algorithm == "ES256"
    assert settings.token.keys[0].key == Path("/srv/stack/keys/token.key")
    assert [(b.kind, getattr(b, "path", None)) for b in settings.users] == [
        ("htpasswd", Path("/srv/stack/config/htpasswd"))
    ]
    assert settings.audit.path == Path("/srv/stack/logs/audit.log")
    assert settings.cache.enabled is True
    assert settings.cache.redis_url is not None
    assert settings.cache.redis_url.get_secret_value() == "redis://127.0.0.1:7001/1"
    assert settings.server.workers is None  # the token service's own default
    assert settings.server.trusted_proxies == 1  # nginx in front: one X-Forwarded-For hop


def test_auth_config_knobs() -> None:
    knobs = StackSettings(
        redis=False, credential_cache=False, auth_workers=3, auth_worker_class="sync"
    )
    data = render_auth_config(_plan(knobs), secret="x" * 64)
    settings = load_auth_settings(data=data, environ={})
    assert settings.cache.redis_url is None
    assert settings.cache.enabled is False
    assert settings.server.workers == 3
    assert settings.server.worker_class == "sync"


def test_auth_config_yaml_survives_a_file_round_trip(tmp_path: Path) -> None:
    from keelhaul.stack.authconf import auth_yaml

    path = tmp_path / "auth.yml"
    path.write_text(auth_yaml(render_auth_config(_plan(), secret="x" * 64)))
    assert load_auth_settings(path, environ={}).token.keys[0].cert.name == "token.crt"


def _granted(user: str, scope: str) -> tuple[str, ...]:
    data = render_auth_config(_plan(), secret="x" * 64)
    acl = Acl.compile(load_auth_settings(data=data, environ={}).acl)
    return acl.allowed_actions(Principal(user), parse_scope(scope))


@pytest.mark.parametrize(
    ("user", "scope", "expected"),
    [
        ("admin", "repository:demo/app:pull,push,delete", ("delete", "pull", "push")),
        ("admin", "registry:catalog:*", ("*",)),
        ("reader", "repository:demo/app:pull,push,delete", ("pull",)),
        ("reader", "repository:reader/app:pull,push,delete", ("delete", "pull", "push")),
        ("reader", "registry:catalog:*", ()),
        ("alice", "repository:alice/x/y:push", ("push",)),
        ("alice", "repository:demo/app:pull", ()),
        ("", "repository:public/base:pull,push", ("pull",)),
        ("", "repository:demo/app:pull", ()),
        ("", "registry:catalog:*", ()),
    ],
)
def test_stack_acl(user: str, scope: str, expected: tuple[str, ...]) -> None:
    assert _granted(user, scope) == expected


def test_htpasswd_lines() -> None:
    assert render_htpasswd({"admin": "$2y$10$a", "reader": "$2y$10$b"}) == (
        "admin:$2y$10$a\nreader:$2y$10$b\n"
    )


# ----------------------------------------------------------------- plan, components, knobs


def test_choose_ports_keeps_forced_ports_and_never_repeats() -> None:
    picks = iter([5000, 5000, 5001, 6000, 5002, 5003, 5004, 5005])
    ports = choose_ports(StackSettings(ports={"registry": 6000}), lambda: next(picks))
    assert ports["registry"] == 6000
    assert len(set(ports.values())) == 6
    assert set(ports) == {"redis", "auth", "registry", "registry_debug", "nginx", "nginx_status"}


def test_choose_ports_without_redis() -> None:
    counter = iter(range(9000, 9100))
    assert "redis" not in choose_ports(StackSettings(redis=False), lambda: next(counter))


def test_components_start_in_order_and_carry_their_markers() -> None:
    specs = component_specs(_plan(), LAYOUT, BINARIES, python="/venv/bin/python")
    assert [s.name for s in specs] == ["redis", "auth", "registry", "nginx"]
    redis, auth, registry, nginx = specs
    assert redis.argv[0] == "/usr/bin/redis-server"
    save = redis.argv.index("--save")
    assert redis.argv[save + 1] == ""
    assert redis.argv[redis.argv.index("--appendonly") + 1] == "no"
    assert "7001" in redis.match
    assert auth.argv == (
        "/venv/bin/python", "-m", "keelhaul", "auth", "serve",
        "--config", "/srv/stack/config/auth.yml",
    )  # fmt: skip
    assert auth.env["PROMETHEUS_MULTIPROC_DIR"] == "/srv/stack/run/auth-metrics"
    assert registry.argv == ("/usr/bin/docker-registry", "serve", "/srv/stack/config/registry.yml")
    assert registry.log == Path("/srv/stack/logs/registry.log")
    assert nginx.argv == (
        "/usr/sbin/nginx", "-p", "/srv/stack/nginx/", "-c", "/srv/stack/config/nginx.conf",
        "-e", "/srv/stack/logs/nginx.log", "-g", "daemon off;",
    )  # fmt: skip
    assert nginx.url == "http://127.0.0.1:7005"


def test_no_redis_means_no_redis_component() -> None:
    specs = component_specs(_plan(StackSettings(redis=False)), LAYOUT, BINARIES)
    assert [s.name for s in specs] == ["auth", "registry", "nginx"]


def test_settings_validation_names_the_key() -> None:
    with pytest.raises(ConfigError, match="bcrypt_cost"):
        load_stack_settings({"bcrypt_cost": 3}, environ={})
    with pytest.raises(ConfigError, match="share a port"):
        load_stack_settings({"ports": {"auth": 7000, "registry": 7000}}, environ={})
    with pytest.raises(ConfigError, match="ports"):
        load_stack_settings({"ports": {"postgres": 7000}}, environ={})


def test_cli_values_override_environment() -> None:
    env = {"KEELHAUL_STACK_BCRYPT_COST": "5", "KEELHAUL_STACK_REDIS": "false"}
    settings = load_stack_settings({"bcrypt_cost": 6, "redis": None}, environ=env)
    assert settings.bcrypt_cost == 6
    assert settings.redis is False


# ----------------------------------------------------------------- stack.json


def _state(root: Path) -> StackState:
    from pydantic import SecretStr

    return StackState(
        dir=str(root),
        started_at="2026-01-01T00:00:00+00:00",
        registry="http://127.0.0.1:7003",
        token_url="http://127.0.0.1:7002/token",
        service="keelhaul-registry",
        issuer="keelhaul-auth",
        redis_url=None,
        users={"admin": SecretStr("pw-admin"), "reader": SecretStr("pw-reader")},
        pids={"auth": 10, "registry": 11},
    )


def test_stack_json_is_written_0600_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    write_state(path, _state(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["users"] == {"admin": "pw-admin", "reader": "pw-reader"}
    loaded = read_state(path)
    assert loaded is not None
    assert loaded.password("reader") == "pw-reader"
    assert loaded.pids == {"auth": 10, "registry": 11}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_stack_state_never_shows_passwords(tmp_path: Path) -> None:
    state = _state(tmp_path)
    assert "pw-admin" not in repr(state)
    assert "pw-admin" not in json.dumps(state.public())
    assert state.public()["users"] == ["admin", "reader"]


def test_nginx_answers_its_own_token_errors_in_json() -> None:
    text = render_nginx_conf(_plan())
    token = text[text.index("location = /token {") :]
    token = token[: token.index("}")]
    for status in (400, 413, 414, 494, 502, 504):
        assert f"error_page {status} =" in token
    assert "error_page 494 =431 /.keelhaul/errors/494;" in text  # also before a location
    page = text[text.index("location = /.keelhaul/errors/414 {") :]
    page = page[: page.index("}\n")]
    assert "internal;" in page and "default_type application/json;" in page
    body = page[page.index("return 414 '") + len("return 414 '") : page.rindex("'")]
    assert json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"


# ----------------------------------------------------------------- an external Redis

EXTERNAL = "redis://:s3cr%40t@10.1.2.3:6390/5"


def test_an_external_redis_url_is_checked_and_its_password_never_echoed() -> None:
    assert load_stack_settings({"redis_url": EXTERNAL}).external_redis is not None
    for bad, says in (
        ("http://10.1.2.3:6390", "must start with redis://"),
        ("redis://:s3cret@10.1.2.3:99999/0", "not a URL"),
        ("redis://:s3cret@10.1.2.3:6390/x", "database must be a number"),
        ("redis://admin:s3cret@10.1.2.3:6390/0", "password only"),
        ("redis://", "names no host"),
    ):
        with pytest.raises(ConfigError, match=says) as caught:
            load_stack_settings({"redis_url": bad})
        assert "s3cret" not in str(caught.value) and "redis_url" in str(caught.value)
    with pytest.raises(ConfigError, match="redis off"):
        load_stack_settings({"redis_url": EXTERNAL, "redis": False})
    # empty (tuned.env's way of taking it back): the own Redis
    assert load_stack_settings(environ={"KEELHAUL_STACK_REDIS_URL": ""}).own_redis
    env = {"KEELHAUL_STACK_REDIS_URL": EXTERNAL}
    assert load_stack_settings(environ=env).redis_url == EXTERNAL


def test_an_external_redis_replaces_the_own_one_in_every_config() -> None:
    settings = StackSettings(redis_url=EXTERNAL)
    ports = {k: v for k, v in PORTS.items() if k != "redis"}
    assert choose_ports(settings, iter(range(9000, 9100)).__next__).keys() == ports.keys()
    plan = StackPlan.local(LAYOUT, settings, ports)
    assert [s.name for s in component_specs(plan, LAYOUT, BINARIES)] == [
        "auth", "registry", "nginx",
    ]  # fmt: skip
    registry = render_registry_config(plan, http_secret="s" * 32)
    assert registry["storage"]["cache"] == {"blobdescriptor": "redis"}
    assert registry["redis"]["addr"] == "10.1.2.3:6390" and registry["redis"]["db"] == 5
    assert registry["redis"]["password"] == "s3cr@t"  # the local file is 0600
    cache = render_auth_config(plan, secret="x" * 40)["cache"]
    assert cache["redis_url"] == "redis://:s3cr%40t@10.1.2.3:6390/5"
    assert load_auth_settings(data={**render_auth_config(plan, secret="x" * 40)})


def test_stack_state_hides_an_external_redis_password() -> None:
    state = StackState(
        dir="/srv/stack", started_at="now", registry="r", token_url="t", service="s",
        issuer="i", redis_url=EXTERNAL, settings=StackSettings(redis_url=EXTERNAL).recorded(),
    )  # fmt: skip
    shown = json.dumps(state.public())
    assert "s3cr" not in shown and "redis://:***@10.1.2.3:6390/5" in shown
    assert state.external_redis

"""The doctor's pure parts: nginx's config language, views of each tier, every rule, and
the stack's knobs each producing the finding that names the wrong shape they reproduce."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from keelhaul.stack.authconf import render_auth_config
from keelhaul.stack.doctor import examine, render_text
from keelhaul.stack.doctor.model import (
    ClockReading,
    KeyView,
    RealmProbe,
    RedisRef,
    Snapshot,
)
from keelhaul.stack.doctor.nginxconf import (
    NginxSyntaxError,
    effective,
    find,
    find_all,
    parse,
    select_location,
)
from keelhaul.stack.doctor.probes import clock_offset
from keelhaul.stack.doctor.rules import check, is_loopback, trusting
from keelhaul.stack.doctor.views import (
    auth_view,
    cert_infos,
    nginx_view,
    parse_redis_url,
    registry_view,
)
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.nginx import render_nginx_conf
from keelhaul.stack.plan import StackPlan
from keelhaul.stack.registry import render_registry_config
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.storage import storage_identity
from keelhaul.stack.tls import issue_server_cert

pytestmark = pytest.mark.unit

PORTS = {"redis": 7001, "auth": 7002, "registry": 7003, "registry_debug": 7004, "nginx": 7005,
         "nginx_status": 7006}  # fmt: skip
NOW = datetime(2026, 6, 1, tzinfo=UTC)


# ----------------------------------------------------------------- nginx's language


def test_parse_blocks_quotes_comments_and_lines() -> None:
    top = parse(
        "worker_processes 4; # four\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        '  log_format j escape=json \'{"a":"$b"}\';\n'
        '  server { listen 8080; location = /x { return 200 "a;b}"; } }\n'
        "}\n"
    )
    assert [d.name for d in top] == ["worker_processes", "events", "http"]
    (http,) = find_all(top, "http")
    log_format = find(http.block or (), "log_format")
    assert log_format is not None and log_format.args[2] == '{"a":"$b"}'
    (server,) = find_all(http.block or (), "server")
    (location,) = find_all(server.block or (), "location")
    assert location.line == 5
    ret = find(location.block or (), "return")
    assert ret is not None and ret.args == ("200", "a;b}")


def test_includes_are_resolved_through_the_loader() -> None:
    files = {"conf.d/*.conf": [("conf.d/a.conf", "server { listen 81; }")]}
    top = parse("http { include conf.d/*.conf; }", include=lambda p: files.get(p, []))
    (http,) = find_all(top, "http")
    (server,) = find_all(http.block or (), "server")
    assert server.source == "conf.d/a.conf"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("http {\n server {\n", 2, "unexpected end"),
        ("events { }\n}\n", 2, "unexpected }"),
        ("log_format 'abc;\n", 1, "unterminated"),
        ("worker_processes 2\n", 1, "missing ;"),
    ],
)
def test_syntax_errors_name_the_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(NginxSyntaxError, match=problem) as caught:
        parse(text, "x.conf")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"x.conf:{line}: ")


SERVER = """
http {
    proxy_buffering off;
    server {
        location / { proxy_pass http://a; }
        location /v2/ { proxy_pass http://registry; proxy_buffering on; }
        location ^~ /static/ { return 200; }
        location ~ ^/v2/.+/blobs/uploads/ { proxy_pass http://up; proxy_request_buffering off; }
        location ~* \\.PNG$ { return 200; }
        location = /token { proxy_pass http://auth; }
        location /nested/ { location ~ /nested/deep { return 204; } }
    }
}
"""


@pytest.mark.parametrize(
    ("uri", "chosen"),
    [
        ("/token", "= /token"),
        ("/tokens", "/"),
        ("/v2/", "/v2/"),
        ("/v2/a/blobs/sha256:00", "/v2/"),
        ("/v2/a/blobs/uploads/uuid", "~ ^/v2/.+/blobs/uploads/"),
        ("/static/x.png", "^~ /static/"),
        ("/img/x.png", "~* \\.PNG$"),
        ("/nested/deep/1", "~ /nested/deep"),
    ],
)
def test_select_location_follows_nginx_precedence(uri: str, chosen: str) -> None:
    (http,) = find_all(parse(SERVER), "http")
    (server,) = find_all(http.block or (), "server")
    location = select_location(server, uri)
    assert location is not None
    assert " ".join(location.args) == chosen


def test_effective_values_inherit_and_default() -> None:
    top = parse(SERVER)
    (http,) = find_all(top, "http")
    (server,) = find_all(http.block or (), "server")
    v2 = select_location(server, "/v2/")
    upload = select_location(server, "/v2/a/blobs/uploads/u")
    assert effective(v2, "proxy_buffering", top) == "on"  # its own
    assert effective(upload, "proxy_buffering", top) == "off"  # from http
    assert effective(upload, "proxy_request_buffering", top) == "off"
    assert effective(v2, "proxy_request_buffering", top) == "on"  # nginx's default
    assert effective(v2, "client_max_body_size", top) == "1m"


# ----------------------------------------------------------------- views


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/1", RedisRef("127.0.0.1", 6379, 1)),
        ("redis://localhost/2", RedisRef("127.0.0.1", 6379, 2)),
        ("redis://:pw@redis.prod:6380", RedisRef("redis.prod", 6380, 0)),
        ("rediss://user:pw@r:6390/0?db=3", RedisRef("r", 6390, 0, "rediss")),
        ("redis://r:1?db=5", RedisRef("r", 1, 5)),
        ("unix:///run/redis.sock?db=4", RedisRef("/run/redis.sock", 0, 4, "unix")),
    ],
)
def test_parse_redis_url(url: str, expected: RedisRef) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("section", "identity"),
    [
        ({"filesystem": {"rootdirectory": "/d"}}, ("filesystem", "/d")),
        ({"filesystem": None}, ("filesystem", "/var/lib/registry")),
        ({"s3": {"bucket": "b", "region": "eu"}, "delete": {}}, ("s3", "b (eu)")),
        ({"s3": {"bucket": "b", "regionendpoint": "http://m", "rootdirectory": "r"}},
         ("s3", "http://m/b:r")),
        ({"gcs": {"bucket": "g"}}, ("gcs", "g")),
        ({"inmemory": None}, ("inmemory", "(process memory)")),
        ({}, ("unknown", "?")),
    ],
)  # fmt: skip
def test_storage_identity(section: dict[str, Any], identity: tuple[str, str]) -> None:
    assert storage_identity(section) == identity


def test_registry_view_of_a_minimal_config() -> None:
    view = registry_view({"version": 0.1, "auth": {"htpasswd": {}}}, "r.yml", None, None)
    assert view.auth_kind == "htpasswd"
    assert view.addr == ":5000"
    assert view.realm is None and view.redis is None


def test_auth_view_reports_invalid_sections_without_needing_the_secret() -> None:
    view = auth_view({"token": {"issuer": "i"}, "server": {"workers": 0}}, "a.yml")
    assert view.issuer == "i"
    assert any(p.startswith("token.") for p in view.problems)
    assert any(p.startswith("server.workers") for p in view.problems)


# ----------------------------------------------------------------- knobs -> findings


def _snapshot(
    settings: StackSettings, tmp_path: Path, *, cpus: int | None = 2, **extra: Any
) -> Snapshot:
    layout = StackLayout(tmp_path)
    plan = StackPlan.local(layout, settings, PORTS)
    certs = cert_infos(_pair(tmp_path))
    registry = registry_view(render_registry_config(plan, http_secret="s" * 32), "registry.yml",
                             certs, None)  # fmt: skip
    auth = auth_view(
        render_auth_config(plan, secret="x" * 40),
        "auth.yml",
        [KeyView(plan.files.signing_cert, certs)],
    )
    nginx = nginx_view(parse(render_nginx_conf(plan)), "nginx.conf")
    fields: dict[str, Any] = {
        "registries": (registry,), "auths": (auth,), "nginx": (nginx,), "cpus": cpus,
        "cpus_source": "test", "probed": False, "now": NOW,
    }  # fmt: skip
    fields.update(extra)
    return Snapshot(**fields)


def _pair(tmp_path: Path, days: int = 365) -> bytes:
    from keelhaul.auth.keygen import generate_keypair

    directory = tmp_path / f"keys-{days}"
    if not (directory / "token.crt").exists():
        generate_keypair(directory, days=days, now=NOW)
    return (directory / "token.crt").read_bytes()


def _ids(snapshot: Snapshot) -> list[str]:
    return [f.id for f in check(snapshot)]


def test_the_default_stack_is_healthy(tmp_path: Path) -> None:
    assert _ids(_snapshot(StackSettings(), tmp_path)) == []


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        ({"auth_worker_class": "sync"}, "auth-worker-class-blocking"),
        ({"auth_worker_class": "gthread"}, "auth-worker-class-blocking"),
        ({"auth_workers": 1}, "auth-workers-below-cores"),
        ({"credential_cache": False}, "credential-cache-off"),
        ({"proxy_workers": 1}, "proxy-workers-below-cores"),
        ({"proxy_connections": 256}, "proxy-connections-low"),
    ],
)
def test_each_wrong_shape_knob_is_flagged(
    tmp_path: Path, knobs: dict[str, Any], expected: str
) -> None:
    assert _ids(_snapshot(StackSettings.model_validate(knobs), tmp_path)) == [expected]


def test_worker_counts_are_not_judged_without_cores(tmp_path: Path) -> None:
    snapshot = _snapshot(StackSettings(auth_workers=1, proxy_workers=1), tmp_path, cpus=None)
    report = examine(snapshot)
    assert report.ok
    assert any("--cpus" in note for note in report.notes)


def test_no_redis_stack_has_nothing_to_compare(tmp_path: Path) -> None:
    assert _ids(_snapshot(StackSettings(redis=False), tmp_path)) == []


def _with(snapshot: Snapshot, **changes: Any) -> Snapshot:
    return Snapshot(**{**snapshot.__dict__, **changes})


def _redis(snapshot: Snapshot, registry: RedisRef | None, auth: RedisRef | None) -> Snapshot:
    return _with(
        snapshot,
        registries=(_replace(snapshot.registries[0], redis=registry),),
        auths=(_replace(snapshot.auths[0], redis=auth),),
    )


def _replace(view: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(view, **changes)


def test_redis_databases_may_differ_but_instances_may_not(tmp_path: Path) -> None:
    base = _snapshot(StackSettings(), tmp_path)
    same = _redis(base, RedisRef("10.0.0.1", 6379, 0), RedisRef("10.0.0.1", 6379, 1))
    assert _ids(same) == []
    split = _redis(base, RedisRef("10.0.0.1", 6379, 0), RedisRef("10.9.9.9", 6379, 1))
    findings = check(split)
    assert [f.id for f in findings] == ["redis-mismatch"]
    assert "10.0.0.1" in findings[0].message and "10.9.9.9" in findings[0].message
    # with the stack's own Redis known, the odd tier is the one named
    ref = _with(split, stack_redis=RedisRef("10.9.9.9", 6379, 0))
    (finding,) = check(ref)
    assert finding.tier == "registry"
    assert "redis.addr in registry.yml" in finding.fix


def test_realm_on_loopback_behind_a_public_entry(tmp_path: Path) -> None:
    base = _snapshot(StackSettings(), tmp_path)
    public = _replace(base.nginx[0], listens=(("0.0.0.0:443", True),))
    assert _ids(_with(base, nginx=(public,))) == ["realm-loopback-mismatch"]
    outward = _replace(base.registries[0], realm="https://registry.example.com/token")
    (finding,) = check(_with(base, registries=(outward,)))
    assert finding.id == "realm-loopback-mismatch" and finding.severity == "warning"


@pytest.mark.parametrize(
    ("probe", "flagged"),
    [
        (RealmProbe("http://x/token", 200, None), False),
        (RealmProbe("http://x/token", 401, None), False),
        (RealmProbe("http://x/token", 404, None), True),
        (RealmProbe("http://x/token", 502, None), True),
        (RealmProbe("http://x/token", None, "ConnectError: refused"), True),
    ],
)
def test_realm_probe(tmp_path: Path, probe: RealmProbe, flagged: bool) -> None:
    snapshot = _with(_snapshot(StackSettings(), tmp_path), realm_probes=(probe,))
    assert _ids(snapshot) == (["realm-unreachable"] if flagged else [])


def test_signing_certificate_expiry(tmp_path: Path) -> None:
    base = _snapshot(StackSettings(), tmp_path)
    for days, expected in (
        (30, []),
        (10, ["signing-cert-expiring"]),
        (-1, ["signing-cert-expired"]),
    ):
        certs = cert_infos(_pair(tmp_path, 400))
        later = NOW + timedelta(days=400 - days)
        registry = _replace(base.registries[0], bundle=certs)
        auth = _replace(base.auths[0], keys=(KeyView("token.crt", certs),))
        assert _ids(_with(base, registries=(registry,), auths=(auth,), now=later)) == expected


def test_a_ca_in_the_bundle_trusts_the_leaf_it_issued(tmp_path: Path) -> None:
    tls = issue_server_cert(tmp_path / "ca.crt", tmp_path / "ca.key", tmp_path / "leaf.crt",
                            tmp_path / "leaf.key", ["signer"])  # fmt: skip
    leaf = cert_infos(tls.cert.read_bytes())
    ca = cert_infos(tls.ca_cert.read_bytes())
    stranger = cert_infos(_pair(tmp_path))
    assert trusting(leaf, ca) == ca[0]
    assert trusting(leaf, stranger) is None
    assert trusting(stranger, stranger + ca) == stranger[0]


def test_clock_offset_and_skew() -> None:
    sent = NOW.timestamp()
    ahead = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    offset = clock_offset(ahead, sent, sent + 0.2)
    assert offset is not None and 90 < offset < 91
    assert clock_offset("not a date", sent, sent) is None


@pytest.mark.parametrize(
    ("registry", "auth", "flagged"),
    [(0.0, 0.5, False), (100.0, 100.0, False), (0.0, 61.0, True), (-40.0, 40.0, True)],
)
def test_clock_skew_rule(tmp_path: Path, registry: float, auth: float, flagged: bool) -> None:
    clocks = (ClockReading("registry", "r", registry), ClockReading("auth", "a", auth))
    snapshot = _with(_snapshot(StackSettings(), tmp_path), clocks=clocks)
    assert _ids(snapshot) == (["clock-skew"] if flagged else [])


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0")  # noqa: S104
    assert not is_loopback("registry.example.com")


def test_report_renders_as_text_and_json(tmp_path: Path) -> None:
    snapshot = _snapshot(StackSettings(auth_worker_class="sync"), tmp_path)
    report = examine(snapshot)
    text = render_text(report)
    assert "auth-worker-class-blocking" in text and "fix:" in text
    data = json.loads(json.dumps(report.as_dict()))
    assert data["ok"] is False
    assert data["findings"][0]["id"] == "auth-worker-class-blocking"
    assert yaml.safe_dump(data)  # plain data all the way down


def test_an_external_redis_is_one_warning_and_no_mismatch(tmp_path: Path) -> None:
    settings = StackSettings(redis_url="redis://:pw@10.0.0.9:6390/3")
    ours = parse_redis_url("redis://127.0.0.1:7001/0")
    theirs = parse_redis_url("redis://:pw@10.0.0.9:6390/3")
    # the tiers agree with each other and with stack.json: only the placement is flagged
    external = _snapshot(settings, tmp_path, stack_redis=theirs, stack_redis_external=True)
    assert _ids(external) == ["redis-external"]
    (finding,) = examine(external).findings
    assert "10.0.0.9:6390" in finding.message and "pw" not in finding.message
    assert "--redis-url" in finding.fix
    # the own Redis is no finding at all
    assert _ids(_snapshot(StackSettings(), tmp_path, stack_redis=ours)) == []

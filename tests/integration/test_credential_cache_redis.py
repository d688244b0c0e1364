"""The shared credential cache against a real redis-server started on a free port."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from keelhaul.auth.app import create_app, shutdown

pytestmark = pytest.mark.integration


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def login(app: Flask, user: str = "alice", password: str = "alice-pw") -> int:
    r = app.test_client().get(
        "/token?service=test-registry&scope=repository:alice/x:pull", headers=basic(user, password)
    )
    return r.status_code


def cache_counts(app: Flask) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in app.test_client().get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith("keelhaul_credential_cache_total{"):
            result = line.split('result="')[1].split('"')[0]
            counts[result] = float(line.rsplit(" ", 1)[1])
    return counts


@pytest.fixture
def two_apps(auth_env, redis_server) -> Iterator[tuple[Flask, Flask]]:  # type: ignore[no-untyped-def]
    settings = auth_env.settings(
        cache={"redis_url": redis_server.url, "retry_interval": 0.3, "redis_timeout": 0.2}
    )
    apps = (create_app(settings), create_app(settings))
    yield apps
    for app in apps:
        shutdown(app)


def test_two_instances_share_verifications(two_apps, redis_server) -> None:  # type: ignore[no-untyped-def]
    a, b = two_apps
    assert login(a) == 200
    assert cache_counts(a) == {"miss": 1.0}
    assert login(b) == 200  # never verified on b: answered by Redis, no bcrypt
    assert cache_counts(b) == {"redis": 1.0}
    assert login(b) == 200
    assert cache_counts(b) == {"redis": 1.0, "local": 1.0}
    keys = redis.Redis.from_url(redis_server.url).keys("keelhaul:cred:*")
    assert len(keys) == 1
    assert b"alice" not in keys[0] and b"alice-pw" not in keys[0]


def test_wrong_password_is_never_cached(two_apps) -> None:  # type: ignore[no-untyped-def]
    a, _ = two_apps
    assert login(a, password="wrong") == 401
    assert login(a, password="wrong") == 401
    assert cache_counts(a) == {}


def test_redis_killed_logins_continue_then_cache_resumes(two_apps, redis_server) -> None:  # type: ignore[no-untyped-def]
    a, b = two_apps
    assert login(a) == 200
    redis_server.stop()
    # b cannot reach the shared cache: it verifies directly, and says so
    started = time.monotonic()
    assert login(b) == 200
    assert time.monotonic() - started < 2.0
    assert cache_counts(b).get("miss") == 1.0
    health = b.test_client().get("/healthz").get_json()
    assert health["status"] == "degraded"
    assert health["checks"]["redis"]["ok"] is False
    assert "keelhaul_credential_cache_redis_degraded 1.0" in b.test_client().get(
        "/metrics"
    ).get_data(as_text=True)
    # several more logins during the outage all succeed
    assert [login(b, "reader", "reader-pw") for _ in range(5)] == [200] * 5

    redis_server.start()
    time.sleep(0.4)  # past retry_interval
    assert b.test_client().get("/healthz").get_json()["status"] == "ok"
    assert login(a, "admin", "admin-pw") == 200  # a verifies admin: miss, written to Redis again
    before = cache_counts(b).get("redis", 0.0)
    assert login(b, "admin", "admin-pw") == 200
    assert cache_counts(b).get("redis", 0.0) == before + 1  # the shared cache answered again


def test_redis_password_setting_authenticates(auth_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from keelhaul.netutil import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--requirepass",
            "r3dis-pw",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 10)
        url = f"redis://127.0.0.1:{port}/1"
        ok = create_app(auth_env.settings(cache={"redis_url": url, "redis_password": "r3dis-pw"}))
        bad = create_app(auth_env.settings(cache={"redis_url": url}))
        try:
            assert login(ok) == 200 and cache_counts(ok) == {"miss": 1.0}
            assert ok.test_client().get("/healthz").get_json()["status"] == "ok"
            assert login(bad) == 200  # no password: Redis refuses, logins still work
            assert bad.test_client().get("/healthz").get_json()["status"] == "degraded"
        finally:
            shutdown(ok)
            shutdown(bad)
    finally:
        proc.kill()
        proc.wait(timeout=10)

"""Brute force over HTTP: 429 + Retry-After for the attacker, never for the real user."""

from __future__ import annotations

import base64
import statistics
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from keelhaul.auth.app import create_app, shutdown

pytestmark = pytest.mark.integration

URL = "/token?service=test-registry&scope=repository:alice/x:pull"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def get(
    client: FlaskClient, user: str, password: str, ip: str = "10.1.1.1"
) -> tuple[int, dict[str, str]]:
    r = client.get(URL, headers=basic(user, password), environ_base={"REMOTE_ADDR": ip})
    return r.status_code, dict(r.headers)


@pytest.fixture
def apps(auth_env, redis_server) -> Iterator[tuple[Flask, Flask]]:  # type: ignore[no-untyped-def]
    settings = auth_env.settings(
        cache={"redis_url": redis_server.url},
        throttle={"max_failures": 3, "max_failures_per_ip": 20, "base_delay": 30, "max_delay": 300},
    )
    pair = (create_app(settings), create_app(settings))
    yield pair
    for app in pair:
        shutdown(app)


def test_attacker_gets_429_owner_elsewhere_and_vouched_user_do_not(apps) -> None:  # type: ignore[no-untyped-def]
    a, b = (app.test_client() for app in apps)
    assert get(a, "alice", "alice-pw")[0] == 200  # alice logged in before: cache vouches for her
    codes = [get(a, "alice", f"guess-{i}")[0] for i in range(3)]
    assert codes == [401, 401, 401]
    status, headers = get(b, "alice", "guess-4")  # other instance: counters are shared in Redis
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 30
    status, _ = get(b, "alice", "alice-pw")  # the right, cache-vouched password still passes
    assert status == 200
    assert get(a, "alice", "guess-5", ip="10.9.9.9")[0] == 401  # another address: not blocked
    assert get(a, "alice", "alice-pw", ip="10.9.9.9")[0] == 200


def test_successful_logins_are_never_throttled(apps) -> None:  # type: ignore[no-untyped-def]
    a, _ = (app.test_client() for app in apps)
    assert all(get(a, "reader", "reader-pw")[0] == 200 for _ in range(100))


def test_unknown_user_costs_what_a_wrong_password_costs(auth_env) -> None:  # type: ignore[no-untyped-def]
    auth_env.write_users({"alice": "alice-pw"}, cost=8)
    app = create_app(auth_env.settings(cache={"enabled": False}, throttle={"enabled": False}))
    client = app.test_client()
    try:
        # interleaved, so that drift on a shared machine hits both sides alike
        known: list[float] = []
        unknown: list[float] = []
        for i in range(22):
            for user, out in (("alice", known), ("nobody-here", unknown)):
                t = time.perf_counter()
                assert get(client, user, f"wrong-{i}")[0] == 401
                out.append((time.perf_counter() - t) * 1000)
        k, u = statistics.median(known[2:]), statistics.median(unknown[2:])
        assert abs(k - u) / k < 0.15, (k, u)
    finally:
        shutdown(app)

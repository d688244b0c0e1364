"""schemathesis against the live token service (gunicorn + gevent): no 5xx, and every
response matches the service's own /openapi.json.

A private token service for this module: the fuzzer's random credentials would otherwise
trip the shared stack's per-address brute-force throttle.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from keelhaul.auth.authn.htpasswd import hash_password
from keelhaul.auth.keygen import generate_keypair
from keelhaul.netutil import free_port, wait_for_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def token_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("openapi")
    pair = generate_keypair(d)
    (d / "htpasswd").write_text(f"alice:{hash_password('alice-pw', 4)}\n")
    port = free_port()
    config = {
        "secret": "o" * 40,
        "token": {
            "issuer": "i",
            "service": "fuzz-registry",
            "keys": [{"key": str(pair.key), "cert": str(pair.cert)}],
        },
        "users": {"htpasswd": str(d / "htpasswd")},
        "acl": [
            {"match": {"account": "alice"}, "actions": ["*"]},
            {"match": {"account": ""}, "actions": ["pull"]},
        ],
        "server": {"bind": f"127.0.0.1:{port}", "workers": 1},
        "audit": {"path": str(d / "audit.log")},
    }
    (d / "auth.yml").write_text(yaml.safe_dump(config))
    with (d / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keelhaul", "auth", "serve", "--config", str(d / "auth.yml")],
            stdout=log,
            stderr=log,
        )
    try:
        assert wait_for_port("127.0.0.1", port, 30), (d / "serve.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in (d / "serve.log").read_text()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_live_service_matches_its_openapi_document(
    token_service: str, mode: GenerationMode
) -> None:
    assert httpx.get(token_service + "/openapi.json").status_code == 200
    schema = schemathesis.openapi.from_url(token_service + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /token", "POST /token", "GET /healthz"}
    if mode is GenerationMode.NEGATIVE:  # only operations with inputs can get invalid ones
        operations = [op for op in operations if op.path == "/token"]
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(checks=CHECKS)

        run()
    assert calls >= 10 * len(operations)  # the fuzzer really ran


@pytest.mark.parametrize(
    ("what", "request_kwargs", "status"),
    [
        (
            "query over max_query_bytes",
            {"params": {"service": "fuzz-registry", "x": "a" * 7000}},
            413,
        ),
        (
            "request line over gunicorn's limit",
            {"params": {"service": "fuzz-registry", "x": "a" * 9000}},
            414,
        ),
        (
            "too many scopes",
            {
                "params": {
                    "service": "fuzz-registry",
                    "scope": [f"repository:r{i}:pull" for i in range(40)],
                }
            },
            400,
        ),
        (
            "username too long",
            {"params": {"service": "fuzz-registry"}, "auth": ("u" * 300, "pw")},
            401,
        ),
        (
            "password too long",
            {"params": {"service": "fuzz-registry"}, "auth": ("alice", "p" * 2000)},
            401,
        ),
        (
            "header over the app's limit",
            {"params": {"service": "fuzz-registry"}, "headers": {"X-Big": "h" * 17000}},
            431,
        ),
        (
            "header over gunicorn's limit",
            {"params": {"service": "fuzz-registry"}, "headers": {"X-Big": "h" * 40000}},
            431,
        ),
    ],
)
def test_limits_give_clear_4xx(
    token_service: str, what: str, request_kwargs: dict[str, object], status: int
) -> None:
    r = httpx.get(token_service + "/token", timeout=10, **request_kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, what
    assert "Traceback" not in r.text
    assert r.headers["content-type"].startswith("application/json"), what
    assert r.json()["errors"][0]["message"]


def test_body_over_limit_is_413(token_service: str) -> None:
    r = httpx.post(
        token_service + "/token", data={"grant_type": "password", "password": "x" * 40000}
    )
    assert r.status_code == 413
    assert r.json()["errors"][0]["code"] == "SIZE_INVALID"

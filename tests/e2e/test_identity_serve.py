"""Identity backends under the real server (gunicorn, one gevent worker) and the robot CLI.

A stalled directory must stall only the logins that need it: with one gevent worker, a
warm login that completes while an LDAP login still waits on the stopped slapd proves the
worker was not blocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from keelhaul.auth.authn.htpasswd import hash_password
from keelhaul.auth.authn.robots import RobotFile, new_robot
from keelhaul.auth.keygen import generate_keypair
from keelhaul.netutil import free_port, wait_for_port
from support.oidc_issuer import Issuer
from support.slapd import SlapdServer, start_slapd

pytestmark = pytest.mark.e2e

LDAP_TIMEOUT = 6  # seconds a stalled LDAP login waits; the warm logins need milliseconds


def keelhaul(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@dataclass
class Served:
    url: str
    config: Path
    audit: Path
    slapd: SlapdServer
    issuer: Issuer

    def token(
        self, user: str, password: str, scope: str, source: str = "127.0.0.1"
    ) -> httpx.Response:
        """A token request from loopback address ``source`` (the throttle counts per address)."""
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=30) as client:
            return client.get(
                f"{self.url}/token",
                params={"service": "reg", "scope": scope},
                auth=(user, password),
            )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    slapd = start_slapd(tmp_path / "slapd")
    issuer = Issuer()
    issuer.add_key("k1")
    proc = None
    log = (tmp_path / "serve.log").open("w")
    try:
        pair = generate_keypair(tmp_path / "keys")
        (tmp_path / "htpasswd").write_text(f"admin:{hash_password('admin-pw', 4)}\n")
        port = free_port()
        config = {
            "secret": "q" * 40,
            "token": {
                "issuer": "i",
                "service": "reg",
                "keys": [{"key": str(pair.key), "cert": str(pair.cert)}],
            },
            "users": [
                {"kind": "htpasswd", "path": str(tmp_path / "htpasswd")},
                {"kind": "robots", "path": str(tmp_path / "robots.json"), "reload_interval": 0.2},
                slapd.backend(nested_depth=0, timeout=LDAP_TIMEOUT, retry_interval=1),
                issuer.backend(),
            ],
            "acl": [
                {"match": {"account": "admin"}, "actions": ["*"]},
                {"match": {"labels": {"robot": "*"}, "name": "team/**"}, "actions": ["*"]},
                {"match": {"account": "/.+/", "name": "team/**"}, "actions": ["pull"]},
            ],
            "throttle": {"max_failures": 10, "max_failures_per_ip": 2, "base_delay": 60},
            "server": {"bind": f"127.0.0.1:{port}", "workers": 1, "worker_class": "gevent"},
            "audit": {"path": str(tmp_path / "audit.log")},
        }
        (tmp_path / "auth.yml").write_text(yaml.safe_dump(config))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keelhaul",
                "auth",
                "serve",
                "--config",
                str(tmp_path / "auth.yml"),
            ],
            stdout=log,
            stderr=log,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert wait_for_port("127.0.0.1", port, 30), (tmp_path / "serve.log").read_text()
        yield Served(
            f"http://127.0.0.1:{port}", tmp_path / "auth.yml", tmp_path / "audit.log", slapd, issuer
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
        issuer.stop()
        slapd.stop()


def audit_lines(served: Served) -> list[dict[str, object]]:
    return [json.loads(line) for line in served.audit.read_text().splitlines() if line.strip()]


def test_stopped_directory_does_not_stall_the_worker(served: Served) -> None:
    scope = "repository:team/app:pull"
    assert served.token("admin", "admin-pw", scope).status_code == 200  # warm from now on
    assert served.token("alice", "alice-ldap-pw", scope).status_code == 200
    served.slapd.pause()
    stalled: list[httpx.Response] = []
    try:
        waiting = threading.Thread(
            target=lambda: stalled.append(served.token("bob", "bob-ldap-pw", scope))
        )
        waiting.start()
        time.sleep(0.5)  # let bob's login reach the directory (ordering, not a measurement)
        warm = [served.token("admin", "admin-pw", scope) for _ in range(5)]
        cached_ldap = served.token("alice", "alice-ldap-pw", scope)
        still_waiting = waiting.is_alive()
        waiting.join(timeout=LDAP_TIMEOUT * 3)
    finally:
        served.slapd.resume()
    assert [r.status_code for r in warm] == [200] * 5
    assert cached_ldap.status_code == 200
    assert still_waiting, "the warm logins had to wait for the stalled LDAP login"
    assert stalled and stalled[0].status_code == 503
    assert stalled[0].json()["errors"][0]["code"] == "UNAVAILABLE"
    health = httpx.get(f"{served.url}/healthz").json()
    assert health["status"] == "degraded" and not health["checks"]["users.ldap"]["ok"]
    deadline = time.monotonic() + 20  # back after retry_interval (1 s), with fresh connections
    while (r := served.token("bob", "bob-ldap-pw", scope)).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.5)
    assert httpx.get(f"{served.url}/healthz").json()["status"] == "ok"


def test_robot_lifecycle_from_the_cli(served: Served) -> None:
    cfg = ["--config", str(served.config)]
    created = keelhaul(
        "auth", "robot", "create", "ci-deployer", *cfg,
        "--allow", "repository:team/*:pull,push", "--expires", "90d", "--description", "CI",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("khr_") and len(secret) > 40
    listed = keelhaul("auth", "robot", "list", *cfg)
    assert "ci-deployer\tactive" in listed.stdout and secret not in listed.stdout
    assert "repository:team/*:pull,push" in listed.stdout
    again = keelhaul("auth", "robot", "create", "ci-deployer", *cfg, "--allow", "repository:x:pull")
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr
    bad = keelhaul("auth", "robot", "create", "r2", *cfg, "--allow", "team/*:pull")
    assert bad.returncode != 0 and "TYPE:NAME-PATTERN" in bad.stderr

    # another client fails on this address until throttled; the robot's first (uncached)
    # login from the same address must still go through
    nat = "127.0.0.2"  # an address shared with a client that keeps failing
    codes = [
        served.token("admin", "x", "repository:team/app:pull", nat).status_code for _ in range(4)
    ]
    assert codes[-1] == 429
    deadline = time.monotonic() + 10  # the service re-reads the file within reload_interval
    while (
        r := served.token("ci-deployer", secret, "repository:team/app:pull,push,delete", nat)
    ).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)
    access = jwt.decode(r.json()["token"], options={"verify_signature": False})["access"]
    assert access[0]["actions"] == ["pull", "push"]  # ACL allows *, the robot pull and push
    other = served.token("ci-deployer", secret, "repository:other/app:pull")
    denied = jwt.decode(other.json()["token"], options={"verify_signature": False})["access"]
    assert [a["actions"] for a in denied] == [[]]  # outside its allow list, whatever the ACL

    robot_lines = [a for a in audit_lines(served) if a["account"] == "ci-deployer"]
    assert robot_lines and all(a["backend"] == "robots" for a in robot_lines)

    revoked = keelhaul("auth", "robot", "revoke", "ci-deployer", *cfg)
    assert revoked.returncode == 0
    deadline = time.monotonic() + 10  # cached verifications included
    while (r := served.token("ci-deployer", secret, "repository:team/app:pull")).status_code != 401:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)
    assert "ci-deployer" not in keelhaul("auth", "robot", "list", *cfg).stdout


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The service's /metrics, parsed: (sample name, sorted labels) -> value."""
    text = httpx.get(f"{served.url}/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def authn(backend: str, kind: str, result: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"backend": backend, "kind": kind, "result": result}
    return "keelhaul_authn_total", tuple(sorted(labels.items()))


def labelled(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_per_backend_metrics_on_a_scrape(served: Served) -> None:
    """Each login lands on its backend's series, with its result; directory trouble and
    JWKS fetches show up as backend events; a failed directory is down on the gauge."""
    scope = "repository:team/app:pull"
    # failures from addresses of their own: the throttle (2 per address) stays out of it
    codes = [
        served.token("admin", "admin-pw", scope).status_code,  # htpasswd: verified
        served.token("admin", "admin-pw", scope).status_code,  # htpasswd: cached
        served.token("admin", "wrong", scope, "127.0.0.11").status_code,
        served.token("alice", "alice-ldap-pw", scope).status_code,  # ldap: search + bind
        served.token("alice", "alice-ldap-pw", scope).status_code,  # ldap: cached
        served.token("carol", "wrong", scope, "127.0.0.12").status_code,
        served.token("nobody", "x", scope, "127.0.0.13").status_code,  # nobody knows it
        served.token("ci", served.issuer.sign(), scope).status_code,
        served.token("ci", served.issuer.sign(aud="another-registry"), scope).status_code,
    ]
    assert codes == [200, 200, 401, 200, 200, 401, 401, 200, 401]
    robot, secret = new_robot("metrics-bot", ("repository:team/*:pull",), now=time.time())
    with RobotFile(served.config.parent / "robots.json").changing() as robots:
        robots[robot.name] = robot
    deadline = time.monotonic() + 10  # re-read within reload_interval
    unknown = 0  # logins before the reload (own address): nobody knows the robot yet
    while (r := served.token("metrics-bot", secret, scope, "127.0.0.14")).status_code != 200:
        assert r.status_code == 401 and time.monotonic() < deadline, r.text
        unknown += 1
        time.sleep(0.2)

    seen = scrape(served)
    expected = {
        authn("htpasswd", "htpasswd", "match"): 1,
        authn("htpasswd", "htpasswd", "cached"): 1,
        authn("htpasswd", "htpasswd", "wrong_password"): 1,
        authn("ldap", "ldap", "match"): 1,
        authn("ldap", "ldap", "cached"): 1,
        authn("ldap", "ldap", "wrong_password"): 1,
        authn("none", "none", "no_match"): 1 + unknown,
        authn("ci", "oidc", "match"): 1,
        authn("ci", "oidc", "rejected"): 1,
        authn("robots", "robots", "match"): 1,
    }
    assert {k: seen.get(k) for k in expected} == expected
    count = labelled("keelhaul_authn_seconds_count", backend="ldap", kind="ldap", result="match")
    total = labelled("keelhaul_authn_seconds_sum", backend="ldap", kind="ldap", result="match")
    assert seen[count] == 1 and seen[total] > 0

    def event(backend: str, kind: str, name: str) -> float:
        key = labelled(
            "keelhaul_authn_backend_events_total", backend=backend, kind=kind, event=name
        )
        return seen.get(key, 0.0)

    assert event("ldap", "ldap", "bind") == 2  # alice once (then cached), carol's wrong one
    assert event("ldap", "ldap", "search") >= 3  # alice, carol, nobody (groups on the same)
    assert event("ci", "oidc", "jwks_fetch") == 1  # then cached for both tokens
    assert event("robots", "robots", "reload") >= 2  # at start, and after the robot was added
    for backend, kind in (("htpasswd", "htpasswd"), ("ldap", "ldap"), ("ci", "oidc")):
        assert seen[labelled("keelhaul_authn_backend_up", backend=backend, kind=kind)] == 1

    # the directory stops answering: an LDAP login fails after its timeout, counted as such
    served.slapd.pause()
    try:
        stalled = served.token("bob", "bob-ldap-pw", scope)
        after = scrape(served)
    finally:
        served.slapd.resume()
    assert stalled.status_code == 503
    assert after[authn("ldap", "ldap", "error")] == 1
    timeout = labelled(
        "keelhaul_authn_backend_events_total",
        backend="ldap",
        kind="ldap",
        event="directory_timeout",
    )
    assert after[timeout] == 1
    assert after[labelled("keelhaul_authn_backend_up", backend="ldap", kind="ldap")] == 0
    assert after[labelled("keelhaul_authn_backend_up", backend="htpasswd", kind="htpasswd")] == 1

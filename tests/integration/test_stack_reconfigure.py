"""``Stack.reconfigure``: live knobs change by restarting only the component that has them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from keelhaul.errors import StackError
from keelhaul.netutil import free_port
from keelhaul.stack import Stack
from keelhaul.stack.settings import StackSettings
from support.servers import RedisServer, spawn_redis
from support.stacks import keelhaul, running_stack

pytestmark = pytest.mark.integration


def _token(state: dict[str, object], user: str) -> int:
    users = state["users"]
    assert isinstance(users, dict)
    resp = httpx.get(
        f"{state['entry']}/token",
        params={"service": state["service"], "scope": "repository:x/y:pull"},
        auth=(user, users[user]),
        timeout=10,
    )
    return resp.status_code


def test_live_knobs_restart_only_their_component(tmp_path: Path) -> None:
    d = tmp_path / "s"
    with running_stack(d, "--auth-workers", "1", "--bcrypt-cost", "4", "--no-credential-cache"):
        before = json.loads((d / "stack.json").read_text())
        secret = yaml.safe_load((d / "config" / "auth.yml").read_text())["secret"]
        stack = Stack(d, StackSettings())
        said: list[str] = []
        stack.reconfigure({"credential_cache": True, "auth_worker_class": "gevent"}, said.append)
        after = json.loads((d / "stack.json").read_text())
        assert after["pids"]["auth"] != before["pids"]["auth"]
        for other in ("redis", "registry", "nginx"):
            assert after["pids"][other] == before["pids"][other], other
        assert after["ports"] == before["ports"]
        assert after["settings"]["credential_cache"] is True
        assert after["settings"]["auth_worker_class"] == "gevent"
        config = yaml.safe_load((d / "config" / "auth.yml").read_text())
        assert config["secret"] == secret  # secrets kept: issued tokens stay valid
        assert config["cache"]["enabled"] is True
        assert config["server"]["worker_class"] == "gevent"
        assert [line for line in said if line.startswith("auth healthy")]
        assert _token(after, "reader") == 200
        assert stack.status().healthy

        stack.reconfigure({"proxy_connections": 512})
        nginx_conf = (d / "config" / "nginx.conf").read_text()
        assert "worker_connections 512;" in nginx_conf
        final = json.loads((d / "stack.json").read_text())
        assert final["pids"]["nginx"] != after["pids"]["nginx"]
        assert final["pids"]["auth"] == after["pids"]["auth"]
        assert _token(final, "admin") == 200


def test_fixed_and_security_knobs_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "s"
    with running_stack(d, "--auth-workers", "1", "--bcrypt-cost", "4"):
        stack = Stack(d, StackSettings())
        pids = json.loads((d / "stack.json").read_text())["pids"]
        for knob, value in (("bcrypt_cost", 4), ("tls", True), ("redis", False)):
            with pytest.raises(StackError, match=knob):
                stack.reconfigure({knob: value})
        with pytest.raises(Exception, match="proxy_connections"):
            stack.reconfigure({"proxy_connections": 3})
        assert json.loads((d / "stack.json").read_text())["pids"] == pids


def test_no_running_stack(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no running stack"):
        Stack(tmp_path / "none", StackSettings()).reconfigure({"credential_cache": True})


# ----------------------------------------------------------------- Redis placement

PASSWORD = "pl4cement-pw"  # the test's own Redis


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A password-protected redis-server the stack does not run (the "production" one)."""
    port = free_port()
    log = tmp_path / "shared-redis.log"
    extra = ("--requirepass", PASSWORD)
    server = RedisServer(port=port, proc=spawn_redis(port, log, *extra), log=log, extra=extra)
    try:
        yield server
    finally:
        server.stop()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "redis-server" in Path(
        f"/proc/{pid}/cmdline"
    ).read_bytes().decode(errors="replace")


def test_an_external_redis_serves_both_tiers_and_the_own_one_replaces_it(
    tmp_path: Path, shared_redis: RedisServer
) -> None:
    d = tmp_path / "s"
    url = f"redis://:{PASSWORD}@127.0.0.1:{shared_redis.port}/3"
    with running_stack(d, "--redis-url", url, "--bcrypt-cost", "4") as info:
        before = json.loads((d / "stack.json").read_text())
        assert "redis" not in before["pids"] and "redis" not in before["ports"]
        registry = yaml.safe_load((d / "config" / "registry.yml").read_text())["redis"]
        assert registry["addr"] == f"127.0.0.1:{shared_redis.port}" and registry["db"] == 3
        auth = yaml.safe_load((d / "config" / "auth.yml").read_text())["cache"]
        assert auth["redis_url"] == url
        assert _token(before, "reader") == 200
        # the token service's credential cache landed in the shared instance, database 3
        shared = redis.Redis(port=shared_redis.port, password=PASSWORD, db=3)
        assert shared.keys("keelhaul:cred:*")
        stack = Stack(d, StackSettings())
        report = stack.status()
        assert report.healthy and report.components[0].external
        assert PASSWORD not in json.dumps(report.as_dict())

        said: list[str] = []
        stack.reconfigure({"redis_url": None}, said.append)
        own = json.loads((d / "stack.json").read_text())
        assert _alive(own["pids"]["redis"]) and own["settings"]["redis_url"] is None
        assert next(iter(own["pids"])) == "redis"  # stopped last by `stack down`
        for tier in ("auth", "registry"):
            assert own["pids"][tier] != before["pids"][tier], tier
        assert own["pids"]["nginx"] == before["pids"]["nginx"]
        assert own["redis_url"] == f"redis://127.0.0.1:{own['ports']['redis']}/0"
        registry = yaml.safe_load((d / "config" / "registry.yml").read_text())["redis"]
        assert registry["addr"] == f"127.0.0.1:{own['ports']['redis']}"
        auth = yaml.safe_load((d / "config" / "auth.yml").read_text())["cache"]
        assert auth["redis_url"] == f"redis://127.0.0.1:{own['ports']['redis']}/1"
        assert _token(own, "admin") == 200
        assert stack.status().healthy
        assert [line for line in said if line.startswith("redis healthy")]

        # and back (what tune does to revert): the own Redis is stopped and forgotten
        stack.reconfigure({"redis_url": url}, said.append)
        back = json.loads((d / "stack.json").read_text())
        assert "redis" not in back["pids"] and not _alive(own["pids"]["redis"])
        assert back["settings"]["redis_url"] == url
        assert _token(back, "reader") == 200
        assert stack.status().healthy
        assert all(PASSWORD not in line for line in said)
        info.pids.update(back["pids"])


def test_a_bad_or_silent_external_redis_is_one_line_at_start(
    tmp_path: Path, shared_redis: RedisServer
) -> None:
    d = tmp_path / "s"
    for url, code, says in (
        (f"redis://:wrong-{PASSWORD}@127.0.0.1:{shared_redis.port}/0", 3, "refused the password"),
        (f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0", 3, "no Redis answers at"),
        (f"redis://:{PASSWORD}@127.0.0.1:{shared_redis.port}/99", 2, "database must be"),
    ):
        done = keelhaul("stack", "up", "--dir", str(d), "--redis-url", url)
        assert done.returncode == code, done.stderr
        assert says in done.stderr and "redis_url" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr and "Traceback" not in done.stderr
        assert not (d / "stack.json").exists() or '"running"' not in (d / "stack.json").read_text()

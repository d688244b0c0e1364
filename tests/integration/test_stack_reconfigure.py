"""``Stack.reconfigure``: live knobs change by restarting only the component that has them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from keelhaul.errors import StackError
from keelhaul.stack import Stack
from keelhaul.stack.settings import StackSettings
from support.stacks import running_stack

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

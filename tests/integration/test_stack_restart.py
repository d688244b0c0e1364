"""`keelhaul stack restart COMPONENT`: bring back a killed component as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


def keelhaul(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_killed_components_come_back_with_their_ports(tmp_path: Path) -> None:
    d = tmp_path / "s"
    assert keelhaul("stack", "up", "--dir", str(d)).returncode == 0
    try:
        before = json.loads((d / "stack.json").read_text())
        for component in ("redis", "registry"):
            os.kill(before["pids"][component], signal.SIGKILL)
        time.sleep(0.3)
        status = keelhaul("stack", "status", "--dir", str(d))
        assert status.returncode != 0
        for component in ("redis", "registry"):
            r = keelhaul("stack", "restart", "--dir", str(d), component)
            assert r.returncode == 0, r.stderr
        after = json.loads((d / "stack.json").read_text())
        assert after["ports"] == before["ports"]
        assert after["pids"]["redis"] != before["pids"]["redis"]
        assert after["pids"]["auth"] == before["pids"]["auth"]  # untouched
        assert keelhaul("stack", "status", "--dir", str(d)).returncode == 0
        # the token service still works against the same Redis port and key material
        reader = after["users"]["reader"]
        r = httpx.get(
            after["token_url"], params={"service": after["service"]}, auth=("reader", reader)
        )
        assert r.status_code == 200
        bad = keelhaul("stack", "restart", "--dir", str(d), "postgres")
        assert (
            bad.returncode != 0
            and "unknown component" in bad.stderr
            and "Traceback" not in bad.stderr
        )
    finally:
        keelhaul("stack", "down", "--dir", str(d))

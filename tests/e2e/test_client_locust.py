"""The same RegistryClient over Locust's FastHttpSession: its requests are in Locust's stats.

The probe runs in a subprocess (``locust_client_probe.py``): importing Locust
monkey-patches the process with gevent, which must not happen to the pytest process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from support.stacks import StackInfo

pytestmark = pytest.mark.e2e

PROBE = Path(__file__).with_name("locust_client_probe.py")


def test_locust_stats_name_every_stage(stack: StackInfo) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    result = subprocess.run(
        [sys.executable, str(PROBE), stack.host, "admin", stack.password("admin"), "admin/locust"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    stats = report["stats"]
    for name in (
        "GET token",
        "HEAD blob HEAD",
        "POST upload start",
        "PATCH upload PATCH",
        "PUT upload PUT",
        "PUT manifest PUT",
        "GET manifest GET",
        "GET blob GET",
    ):
        assert stats[name]["requests"] >= 1, name
    # two layers over 64 KiB went as PATCH + closing PUT; the config in one PUT
    assert stats["PATCH upload PATCH"]["requests"] == 2
    assert stats["PUT upload PUT"]["requests"] == 3
    # every blob GET counted in full: streamed, and reported after the last byte
    assert stats["GET blob GET"]["requests"] == 3
    assert stats["GET blob GET"]["bytes"] == report["pull"]["bytes"]
    assert report["pull"]["bytes"] == report["push"]["bytes_uploaded"]
    assert report["pull"]["digest"] == report["push"]["digest"]
    # the only failure is the manifest GET for a tag that does not exist
    assert report["missing"] == "ManifestNotFound"
    failures = {name: s["failures"] for name, s in stats.items() if s["failures"]}
    assert failures == {"GET manifest GET": 1}
    assert stack.password("admin") not in result.stdout + result.stderr

"""The token service's image installs the `auth` extra only: `keelhaul auth serve` must
start there although the load kit's dependencies (hdrh, Locust) are missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROBE = """
import sys
for missing in ("hdrh", "locust", "psutil"):
    sys.modules[missing] = None  # import fails with ModuleNotFoundError, like a missing extra
from keelhaul.cli.main import main
sys.exit(main(["auth", "serve", "--help"]))
"""


def test_auth_serve_without_the_load_kits_dependencies() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "gunicorn" in done.stdout


def test_a_missing_part_of_keelhaul_itself_still_fails() -> None:
    probe = PROBE.replace('("hdrh", "locust", "psutil")', '("keelhaul.cli.load_cmd",)')
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "keelhaul.cli.load_cmd" in done.stderr

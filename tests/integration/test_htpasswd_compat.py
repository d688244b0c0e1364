"""The htpasswd file keelhaul writes is the one the registry's own htpasswd auth reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from keelhaul.auth.authn.htpasswd import HtpasswdFile, hash_password
from keelhaul.netutil import free_port, wait_for_port

pytestmark = pytest.mark.integration


def test_registry_htpasswd_auth_accepts_our_file(tmp_path: Path) -> None:
    registry = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    (tmp_path / "htpasswd").write_text(f"alice:{hash_password('alice-pw', 5)}\n")
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "x" * 16},
        "auth": {"htpasswd": {"realm": "t", "path": str(tmp_path / "htpasswd")}},
    }
    (tmp_path / "config.yml").write_text(json.dumps(config))
    with (tmp_path / "registry.log").open("wb") as log:
        proc = subprocess.Popen(
            [registry, "serve", str(tmp_path / "config.yml")], stdout=log, stderr=log
        )
    try:
        assert wait_for_port("127.0.0.1", port, 20)
        base = f"http://127.0.0.1:{port}/v2/"
        assert httpx.get(base, auth=("alice", "alice-pw")).status_code == 200
        assert httpx.get(base, auth=("alice", "wrong")).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # and keelhaul reads a file the registry reads
    store = HtpasswdFile(tmp_path / "htpasswd")
    assert store.lookup("alice") is not None

"""`keelhaul auth …` driven as a subprocess: the operator's view."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from keelhaul.netutil import free_port, wait_for_port

pytestmark = pytest.mark.e2e


def keelhaul(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_keygen_jwks_bundle_hash(tmp_path: Path) -> None:
    r = keelhaul("auth", "keygen", "--out", str(tmp_path / "keys"), "--name", "k1")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "keys" / "k1.key").stat().st_mode & 0o777 == 0o600
    again = keelhaul("auth", "keygen", "--out", str(tmp_path / "keys"), "--name", "k1")
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr
    keelhaul(
        "auth", "keygen", "--out", str(tmp_path / "keys"), "--name", "k2", "--algorithm", "RS256"
    )
    hashed = keelhaul("auth", "hash", "--cost", "4", "--user", "alice", stdin="pw\n")
    assert hashed.returncode == 0 and hashed.stdout.startswith("alice:$2y$04$")
    (tmp_path / "htpasswd").write_text(hashed.stdout)
    config = {
        "secret": "x" * 40,
        "token": {
            "issuer": "i",
            "service": "s",
            "algorithm": "ES256",
            "kid_format": "rfc7638",
            "keys": [{"key": str(tmp_path / "keys/k1.key"), "cert": str(tmp_path / "keys/k1.crt")}],
        },
        "users": {"htpasswd": str(tmp_path / "htpasswd")},
    }
    (tmp_path / "auth.yml").write_text(yaml.safe_dump(config))
    jwks = json.loads(keelhaul("auth", "jwks", "--config", str(tmp_path / "auth.yml")).stdout)
    assert jwks["keys"][0]["kty"] == "EC" and jwks["keys"][0]["kid"]
    bundle = keelhaul("auth", "bundle", "--config", str(tmp_path / "auth.yml")).stdout
    assert bundle.count("BEGIN CERTIFICATE") == 1
    check = keelhaul("auth", "check", "--config", str(tmp_path / "auth.yml"))
    assert check.returncode == 0 and "users.htpasswd: ok (1 users)" in check.stdout
    assert "warning" not in check.stdout
    # the distribution 3.0.0 quirk is available by name only, and warned about
    config["token"]["kid_format"] = "distribution-3.0.0"
    (tmp_path / "auth.yml").write_text(yaml.safe_dump(config))
    quirk = keelhaul("auth", "check", "--config", str(tmp_path / "auth.yml"))
    assert quirk.returncode == 0
    assert "warning: token.kid_format: distribution-3.0.0" in quirk.stdout
    config["token"]["kid_format"] = "registry-v3"
    (tmp_path / "auth.yml").write_text(yaml.safe_dump(config))
    renamed = keelhaul("auth", "check", "--config", str(tmp_path / "auth.yml"))
    assert renamed.returncode == 2 and "token.kid_format" in renamed.stderr
    assert "distribution-3.0.0" in renamed.stderr and "Traceback" not in renamed.stderr
    config["token"]["kid_format"] = "rfc7638"
    # an RSA key under an ES256 config is refused, naming the key
    config["token"]["keys"] = [
        {"key": str(tmp_path / "keys/k2.key"), "cert": str(tmp_path / "keys/k2.crt")}
    ]
    (tmp_path / "auth.yml").write_text(yaml.safe_dump(config))
    bad = keelhaul("auth", "check", "--config", str(tmp_path / "auth.yml"))
    assert (
        bad.returncode == 2 and "token.keys.0.key" in bad.stderr and "PRIVATE KEY" not in bad.stderr
    )


def test_serve_refuses_bad_config_with_the_key(tmp_path: Path) -> None:
    (tmp_path / "auth.yml").write_text(
        yaml.safe_dump({"secret": "y" * 40, "token": {"issuer": ""}})
    )
    r = keelhaul("auth", "serve", "--config", str(tmp_path / "auth.yml"))
    assert r.returncode == 2
    assert "token.issuer" in r.stderr and "token.keys: is required" in r.stderr
    assert "Traceback" not in r.stderr and "y" * 40 not in r.stderr


def test_serve_logs_effective_settings_and_issues_tokens(tmp_path: Path) -> None:
    keelhaul("auth", "keygen", "--out", str(tmp_path))
    hashed = keelhaul("auth", "hash", "--cost", "4", "--user", "bob", stdin="bob-pw\n").stdout
    (tmp_path / "htpasswd").write_text(hashed)
    port = free_port()
    config = {
        "secret": "z" * 40,
        "token": {
            "issuer": "i",
            "service": "s",
            "keys": [{"key": str(tmp_path / "token.key"), "cert": str(tmp_path / "token.crt")}],
        },
        "users": {"htpasswd": str(tmp_path / "htpasswd")},
        "acl": [{"match": {"account": "bob"}, "actions": ["pull"]}],
        "server": {"bind": f"127.0.0.1:{port}", "workers": 4},
        "audit": {"path": str(tmp_path / "audit.log")},
    }
    (tmp_path / "auth.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "serve.log").open("w")
    env = {"PATH": "/usr/bin:/bin", "KEELHAUL_AUTH_SERVER__WORKER_CONNECTIONS": "77"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keelhaul",
            "auth",
            "serve",
            "--config",
            str(tmp_path / "auth.yml"),
            "--workers",
            "2",
        ],
        stdout=log,
        stderr=log,
        env=env,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 30)
        r = httpx.get(
            f"http://127.0.0.1:{port}/token?service=s&scope=repository:x:pull",
            auth=("bob", "bob-pw"),
        )
        assert r.status_code == 200
        deadline = time.monotonic() + 10
        text = ""
        while "effective server settings" not in text and time.monotonic() < deadline:
            time.sleep(0.1)
            text = (tmp_path / "serve.log").read_text()
        # flag beats config (workers 2, not 4); environment beats defaults (77)
        assert "'workers': 2" in text and "'worker_connections': 77" in text and "'gevent'" in text
        assert "MonkeyPatchWarning" not in text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

"""Shared fixtures: hermetic environment, real servers on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keelhaul.netutil import free_port, wait_for_port


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KEELHAUL_* setting from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("KEELHAUL_"):
            monkeypatch.delenv(name)


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def start(self) -> None:
        """(Re)start on the same port, e.g. after a test killed it."""
        self.proc = _spawn_redis(self.port, self.log)


def _spawn_redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if not wait_for_port("127.0.0.1", port, 10):
        proc.kill()
        raise RuntimeError(f"redis-server did not start; see {log}")
    return proc


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, stopped by pid afterwards."""
    port = free_port()
    log = tmp_path / "redis.log"
    server = RedisServer(port=port, proc=_spawn_redis(port, log), log=log)
    try:
        yield server
    finally:
        server.stop()


# --- token service fixtures -------------------------------------------------------------

HTPASSWD_COST = 4  # fast hashes in tests; the bench measures cost 10


@dataclass
class AuthEnv:
    """Keys, an htpasswd file and a settings builder in a temp dir."""

    dir: Path
    key: Path
    cert: Path
    htpasswd: Path
    passwords: dict[str, str]

    def write_users(self, users: dict[str, str], cost: int = HTPASSWD_COST) -> None:
        from keelhaul.auth.authn.htpasswd import hash_password

        self.passwords = dict(users)
        tmp = self.htpasswd.with_suffix(".tmp")
        tmp.write_text("".join(f"{u}:{hash_password(p, cost)}\n" for u, p in users.items()))
        tmp.replace(self.htpasswd)

    def data(self, **overrides: object) -> dict[str, object]:
        base: dict[str, object] = {
            "secret": "test-secret-" + "x" * 32,
            "token": {
                "issuer": "test-issuer",
                "service": "test-registry",
                "keys": [{"key": str(self.key), "cert": str(self.cert)}],
            },
            "users": {"htpasswd": str(self.htpasswd), "reload_interval": 0.05},
            "acl": [
                {"match": {"account": "admin"}, "actions": ["*"]},
                {
                    "match": {"account": "/.+/", "name": "${account}/**"},
                    "actions": ["pull", "push", "delete"],
                },
                {"match": {"account": "reader"}, "actions": ["pull"]},
                {"match": {"account": "", "name": "public/**"}, "actions": ["pull"]},
            ],
            "audit": {"path": str(self.dir / "audit.log")},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}  # type: ignore[dict-item]
            else:
                base[key] = value
        return base

    def settings(self, **overrides: object):  # type: ignore[no-untyped-def]
        from keelhaul.auth.settings import load_auth_settings

        return load_auth_settings(data=self.data(**overrides), environ={})


@pytest.fixture(scope="session")
def _signing_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from keelhaul.auth.keygen import generate_keypair

    pair = generate_keypair(tmp_path_factory.mktemp("keys"))
    return pair.key, pair.cert


@pytest.fixture
def auth_env(tmp_path: Path, _signing_pair: tuple[Path, Path]) -> AuthEnv:
    env = AuthEnv(tmp_path, _signing_pair[0], _signing_pair[1], tmp_path / "htpasswd", {})
    env.write_users({"admin": "admin-pw", "reader": "reader-pw", "alice": "alice-pw"})
    return env

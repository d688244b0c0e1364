"""Shared fixtures: hermetic environment, real servers on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from keelhaul.netutil import free_port
from support.servers import RedisServer, spawn_redis

# No timing assertion in the suite: a shared 2-CPU host must not fail a property test
# because one example took longer than hypothesis' default 200 ms deadline.
hypothesis_settings.register_profile("keelhaul", deadline=None)
hypothesis_settings.load_profile("keelhaul")


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KEELHAUL_* setting from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("KEELHAUL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, stopped by pid afterwards."""
    port = free_port()
    log = tmp_path / "redis.log"
    server = RedisServer(port=port, proc=spawn_redis(port, log), log=log)
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

"""The local stack as the end-to-end tests drive it: the CLI as a subprocess, ``stack.json``.

Imported by the e2e fixtures (``tests/e2e/conftest.py``) and by any test that starts a
stack of its own shape (``running_stack(dir, "--auth-workers", "1")``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CLI_TIMEOUT",
    "Skopeo",
    "StackInfo",
    "clean_env",
    "keelhaul",
    "kill_leftovers",
    "running_stack",
]

CLI_TIMEOUT = 120


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without KEELHAUL_* (a session fixture outlives monkeypatch)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    env.update(extra or {})
    return env


def keelhaul(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the CLI the way a user does: ``python -m keelhaul ...``."""
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        capture_output=True,
        text=True,
        env=clean_env() if env is None else dict(env),
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class StackInfo:
    """The parsed ``stack.json`` of a running stack."""

    dir: Path
    registry: str
    token_url: str
    service: str
    issuer: str
    users: dict[str, str]
    pids: dict[str, int]
    urls: dict[str, str]
    entry: str
    ca_cert: Path | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, directory: Path) -> StackInfo:
        raw = json.loads((directory / "stack.json").read_text())
        return cls(
            dir=directory,
            registry=raw["registry"],
            token_url=raw["token_url"],
            service=raw["service"],
            issuer=raw["issuer"],
            users=raw["users"],
            pids=raw["pids"],
            urls=raw["urls"],
            entry=raw["entry"],
            ca_cert=Path(raw["ca_cert"]) if raw.get("ca_cert") else None,
            raw=raw,
        )

    @property
    def host(self) -> str:
        """The registry itself, ``127.0.0.1:<port>``, as in ``docker://HOST/repo:tag``."""
        return self.registry.removeprefix("http://")

    @property
    def entry_host(self) -> str:
        """The proxy in front, the address clients are meant to use."""
        return self.entry.split("://", 1)[1]

    def password(self, user: str) -> str:
        return self.users[user]


def kill_leftovers(directory: Path, pids: Mapping[str, int]) -> None:
    """SIGKILL recorded pids whose command line still names this stack (or is redis)."""
    for pid in pids.values():
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(directory) in line or "redis-server" in line:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _recorded_pids(directory: Path) -> dict[str, int]:
    try:
        pids = json.loads((directory / "stack.json").read_text()).get("pids", {})
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in pids.items()}


@contextlib.contextmanager
def running_stack(directory: Path, *options: str) -> Iterator[StackInfo]:
    """``keelhaul stack up --dir DIR OPTIONS`` ... ``down``; leftovers killed by pid."""
    up = keelhaul("stack", "up", "--dir", str(directory), *options)
    if up.returncode != 0:
        kill_leftovers(directory, _recorded_pids(directory))
        pytest.fail(f"keelhaul stack up failed ({up.returncode}):\n{up.stderr}", pytrace=False)
    info = StackInfo.load(directory)
    try:
        yield info
    finally:
        down = keelhaul("stack", "down", "--dir", str(directory))
        if down.returncode != 0:
            kill_leftovers(directory, info.pids)
            pytest.fail(f"keelhaul stack down failed:\n{down.stderr}", pytrace=False)


class Skopeo:
    """skopeo against the stack over plain HTTP; credentials go through auth files, never argv."""

    def __init__(self, binary: str, workdir: Path, stack: StackInfo) -> None:
        self.binary = binary
        self.workdir = workdir
        self.stack = stack

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--insecure-policy", *args],
            capture_output=True,
            text=True,
            env=clean_env({"HOME": str(self.workdir)}),
            timeout=120,
            check=False,
        )

    def authfile(self, user: str, password: str | None = None, host: str | None = None) -> Path:
        secret = self.stack.password(user) if password is None else password
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        path = self.workdir / f"auth-{user}-{uuid.uuid4().hex[:8]}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"auths": {host or self.stack.host: {"auth": token}}}, fh)
        return path

    def _creds(
        self, side: str, user: str | None, password: str | None, host: str | None
    ) -> list[str]:
        if user is None:
            return [f"--{side}-no-creds"]
        return [f"--{side}-authfile", str(self.authfile(user, password, host))]

    def _tls(self, side: str, cert_dir: Path | None) -> list[str]:
        """Verification off on plain http; with a CA, verified against it."""
        if cert_dir is None:
            return [f"--{side}-tls-verify=false"]
        return [f"--{side}-cert-dir", str(cert_dir)]

    def push(
        self, layout: Path, repo: str, *, user: str | None, password: str | None = None,
        tag: str = "latest", host: str | None = None, cert_dir: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.run(
            "copy", *self._tls("dest", cert_dir), *self._creds("dest", user, password, host),
            f"oci:{layout}:{tag}", f"docker://{host or self.stack.host}/{repo}",
        )  # fmt: skip

    def pull(
        self, repo: str, dest: Path, *, user: str | None, password: str | None = None,
        tag: str = "pulled", host: str | None = None, cert_dir: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.run(
            "copy", *self._tls("src", cert_dir), *self._creds("src", user, password, host),
            f"docker://{host or self.stack.host}/{repo}", f"oci:{dest}:{tag}",
        )  # fmt: skip

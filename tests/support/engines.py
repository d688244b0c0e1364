"""The real container engines of the e2e tests, in one place: the session's private dockerd,
Debian's docker CLI with a private config directory, podman with a private root, a tiny
image made here (nothing is pulled from the internet), and the ledger that removes by id
everything a test created.

Imported by ``conftest.py`` (the fixtures) and by the engine tests.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from keelhaul.engine import Dockerd
from keelhaul.engine.images import DEFAULT_CACHE, data_root

ENGINE_CACHE = DEFAULT_CACHE
"""The image cache (the private dockerd's data root is ``ENGINE_CACHE/docker``); outside the
checkout, kept across runs: ``make images`` fills the same one."""
PODMAN = Path("/usr/bin/podman")
CLIENT_TIMEOUT = 300


def loopback_name() -> tuple[str, str]:
    """This host's name and the one loopback address it resolves to.

    The compose test's public URL uses the host's name, as an operator's would (a realm on
    a loopback *literal* is what ``stack doctor`` rightly flags for a published port), while
    every byte still goes to 127.0.0.0/8: the port is published on that address only.
    """
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
    if len(addresses) != 1 or not next(iter(addresses)).startswith("127."):
        pytest.fail(
            f"this host's name {name!r} resolves to {sorted(addresses)}, not to one loopback "
            "address: the engine tests publish on loopback only (add it to /etc/hosts)",
            pytrace=False,
        )
    return name, addresses.pop()


def start_dockerd() -> Dockerd:
    daemon = Dockerd(data_root(ENGINE_CACHE))
    daemon.start()
    return daemon


@dataclass
class Ledger:
    """Ids of what a test created in the daemon, removed by id at the end (even on failure)."""

    daemon: Dockerd
    ids: dict[str, set[str]] = field(
        default_factory=lambda: {"container": set(), "network": set(), "volume": set()}
    )
    images: set[str] = field(default_factory=set)

    def record_project(self, project: str) -> None:
        label = f"com.docker.compose.project={project}"
        for kind in self.ids:
            self.ids[kind] |= self.daemon.ids(kind, label)

    def remaining(self) -> dict[str, set[str]]:
        listed = {
            "container": ("ps", "-aq", "--no-trunc"),
            "network": ("network", "ls", "-q", "--no-trunc"),
            "volume": ("volume", "ls", "-q"),
        }
        left: dict[str, set[str]] = {}
        for kind, argv in listed.items():
            present = set(self.daemon.docker(*argv).stdout.split())
            left[kind] = {i for i in self.ids[kind] if any(p.startswith(i) for p in present)}
        return left

    def clean(self) -> None:
        left = self.remaining()
        for cid in left["container"]:
            self.daemon.docker("rm", "-f", "-v", cid, check=False)
        for nid in left["network"]:
            self.daemon.docker("network", "rm", nid, check=False)
        for vid in left["volume"]:
            self.daemon.docker("volume", "rm", "-f", vid, check=False)
        for image in self.images:
            self.daemon.docker("rmi", "-f", image, check=False)


@contextlib.contextmanager
def ledger(daemon: Dockerd) -> Iterator[Ledger]:
    book = Ledger(daemon)
    try:
        yield book
    finally:
        book.clean()


def tiny_image(daemon: Dockerd, book: Ledger, note: str) -> str:
    """A one-file image made here (``docker import``), its id recorded for removal."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = f"keelhaul engine test {note} {uuid.uuid4().hex}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tag = f"kh-tiny:{uuid.uuid4().hex[:12]}"
    daemon.docker("import", "-", tag, input=buffer.getvalue())
    image_id = daemon.docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    book.images.add(image_id)
    return tag


class DockerClient:
    """Debian's docker CLI for one user: its own config directory (``DOCKER_CONFIG``), so a
    login is stored there and nowhere else; secrets go through stdin."""

    def __init__(self, daemon: Dockerd, config_dir: Path) -> None:
        self.daemon = daemon
        self.config_dir = config_dir
        config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.daemon.docker(
            *args,
            input=None if stdin is None else stdin.encode(),
            env={"DOCKER_CONFIG": str(self.config_dir)},
            check=False,
            timeout=CLIENT_TIMEOUT,
        )

    def login(self, host: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
        return self.run("login", host, "--username", user, "--password-stdin", stdin=password)

    def config(self) -> dict[str, Any]:
        path = self.config_dir / "config.json"
        if not path.exists():
            return {}
        parsed: dict[str, Any] = json.loads(path.read_text())
        return parsed


def stored_login(config: Mapping[str, Any], host: str) -> dict[str, str]:
    """What ``docker login`` stored for ``host``: user name (from ``auth``) and the rest."""
    entry = dict(config.get("auths", {}).get(host, {}))
    if "auth" in entry:
        user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
        entry["username"], entry["password"] = user, secret
    return entry


class Podman:
    """podman as root with a private ``--root``/``--runroot`` (vfs), auth file and cert dir;
    the host's registries.conf is replaced by an empty one (no search registries)."""

    def __init__(self, workdir: Path) -> None:
        if not PODMAN.exists():
            pytest.fail("podman is missing: apt-get install podman", pytrace=False)
        self.workdir = workdir
        for sub in ("root", "tmp"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        # podman refuses a runroot path longer than 50 characters
        self.runroot = Path(tempfile.mkdtemp(prefix="kh-podman-", dir="/tmp"))
        self.authfile = workdir / "auth.json"
        self.registries = workdir / "registries.conf"
        self.registries.write_text(
            'unqualified-search-registries = []\nshort-name-mode = "enforcing"\n'
        )

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KEELHAUL_", "DOCKER_"))}
        env.update(
            {
                "CONTAINERS_REGISTRIES_CONF": str(self.registries),
                "REGISTRY_AUTH_FILE": str(self.authfile),
                "TMPDIR": str(self.workdir / "tmp"),
                "HOME": str(self.workdir),
            }
        )
        return subprocess.run(
            [
                str(PODMAN),
                "--root", str(self.workdir / "root"),
                "--runroot", str(self.runroot),
                "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs",
                "--events-backend", "file",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=CLIENT_TIMEOUT,
            check=False,
        )  # fmt: skip

    def login(
        self, host: str, user: str, password: str, *tls: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run("login", *tls, "--username", user, "--password-stdin", host, stdin=password)

    def stop(self) -> None:
        """Remove every image from the private root (vfs: plain directories, no mount)."""
        self.run("rmi", "--all", "--force")
        shutil.rmtree(self.runroot, ignore_errors=True)

"""One real stack per test session, started and stopped through the CLI, and skopeo.

The ``stack`` fixture runs ``keelhaul stack up`` as a subprocess, exactly as a user would,
and ``keelhaul stack down`` at the end; if ``down`` fails, every recorded pid that still
belongs to the stack is killed, so no test run leaves a process behind.
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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from keelhaul.errors import MissingBinaryError
from keelhaul.stack.stack import resolve_binary

if TYPE_CHECKING:
    from engines import Ledger

    from keelhaul.engine import Dockerd

CLI_TIMEOUT = 120


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without KEELHAUL_* (a session fixture outlives monkeypatch)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    env.update(extra or {})
    return env


def keelhaul(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI the way a user does: ``python -m keelhaul ...``."""
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        capture_output=True,
        text=True,
        env=clean_env() if env is None else dict(env),
        timeout=CLI_TIMEOUT,
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


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The default stack (nginx in front, plain http), shared by the whole session."""
    with running_stack(tmp_path_factory.mktemp("stack")) as info:
        yield info


@pytest.fixture(scope="session")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A second stack with ``--tls``; fast hashes and one worker, it only carries TLS tests."""
    directory = tmp_path_factory.mktemp("tls-stack")
    with running_stack(directory, "--tls", "--auth-workers", "1", "--bcrypt-cost", "4") as info:
        yield info


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


@pytest.fixture(scope="session")
def skopeo_binary() -> str:
    try:
        return resolve_binary("skopeo", "skopeo", os.environ.get("PATH"))
    except MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def make_skopeo(skopeo_binary: str, stack: StackInfo) -> Callable[[Path], Skopeo]:
    """``make_skopeo(workdir)``: a skopeo bound to the session's stack."""
    return lambda workdir: Skopeo(skopeo_binary, workdir, stack)


@pytest.fixture
def skopeo(make_skopeo: Callable[[Path], Skopeo], tmp_path: Path) -> Skopeo:
    return make_skopeo(tmp_path)


@pytest.fixture
def tls_skopeo(skopeo_binary: str, tls_stack: StackInfo, tmp_path: Path) -> Skopeo:
    """A skopeo bound to the ``--tls`` stack."""
    return Skopeo(skopeo_binary, tmp_path, tls_stack)


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli("stack", "status", ...)``: the keelhaul command as a subprocess."""
    return keelhaul


# --- headless Chromium for the self-contained HTML reports ------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class OpenedPage:
    """A report opened in Chromium, with what the page said and fetched while loading."""

    page: Any
    console: list[tuple[str, str]]
    errors: list[str]
    requests: list[str]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_report(browser: Any) -> Callable[[Path], OpenedPage]:
    def opener(path: Path) -> OpenedPage:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        opened = OpenedPage(page, [], [], [])
        page.on("console", lambda m: opened.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: opened.errors.append(str(e)))
        page.on("request", lambda r: opened.requests.append(r.url))
        page.goto(path.as_uri(), wait_until="load")
        return opened

    return opener


# --- container engines (one private dockerd per session; see engines.py) -----------------


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """A private dockerd (socket, exec root, pidfile of its own; the image cache as data
    root), started once per session and stopped by pid at its end, even after a failure."""
    from engines import start_dockerd

    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def engine_ledger(dockerd: Dockerd) -> Iterator[Ledger]:
    """Records what a test creates in the daemon; removes it by id at teardown."""
    from engines import ledger

    with ledger(dockerd) as book:
        yield book

"""One real stack per test session, started and stopped through the CLI, and skopeo.

The ``stack`` fixture runs ``keelhaul stack up`` as a subprocess, exactly as a user would,
and ``keelhaul stack down`` at the end; if ``down`` fails, every recorded pid that still
belongs to the stack is killed, so no test run leaves a process behind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from keelhaul.errors import MissingBinaryError
from keelhaul.stack.stack import resolve_binary
from support.stacks import (
    CLI_TIMEOUT,
    Skopeo,
    StackInfo,
    clean_env,
    keelhaul,
    kill_leftovers,
    running_stack,
)

__all__ = [
    "CLI_TIMEOUT",
    "Skopeo",
    "StackInfo",
    "clean_env",
    "keelhaul",
    "kill_leftovers",
    "running_stack",
]

if TYPE_CHECKING:
    from keelhaul.engine import Dockerd
    from support.engines import Ledger, Podman


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
    from support.engines import start_dockerd

    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    """podman with a private root under the test's directory, emptied at teardown."""
    from support.engines import Podman

    client = Podman(tmp_path / "podman")
    try:
        yield client
    finally:
        client.stop()


@pytest.fixture
def engine_ledger(dockerd: Dockerd) -> Iterator[Ledger]:
    """Records what a test creates in the daemon; removes it by id at teardown."""
    from support.engines import ledger

    with ledger(dockerd) as book:
        yield book

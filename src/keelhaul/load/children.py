"""``--processes N``: N local worker processes, each ``keelhaul load --worker``.

They are started as plain subprocesses of the master, so a local worker is exactly what a
worker on another host is: it connects to the master's Locust port, receives the run plan
and its share, and reports its statistics. Each gets the master's credentials through its
environment (``KEELHAUL_REGISTRY_USERNAME``/``_PASSWORD``, or ``--stack-dir`` for the local
stack), never on its command line. They run in a session of their own, so a Ctrl-C in the
terminal reaches only the master, which stops them in order; whatever is left when the
master is done is stopped by pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from keelhaul.client.credentials import ENV_PASSWORD, ENV_USERNAME
from keelhaul.load.settings import LoadSettings

__all__ = ["LocalWorkers", "worker_argv", "worker_env"]


def worker_argv(
    settings: LoadSettings, *, master_port: int, embedded: bool, python: str = sys.executable
) -> list[str]:
    argv = [
        python, "-m", "keelhaul", "load", "--worker",
        "--master-host", "127.0.0.1", "--master-port", str(master_port),
        "--stop-timeout", f"{settings.stop_timeout_s:g}",
        "--print-every", "0",  # they share the master's stderr: its merged view is shown
    ]  # fmt: skip
    if embedded:
        argv += ["--stack-dir", str(settings.stack_dir)]
    elif settings.authfile is not None:
        argv += ["--authfile", str(settings.authfile)]
    if settings.worker_stats_dir is not None:
        argv += ["--worker-stats", str(settings.worker_stats_dir)]
    return argv


def worker_env(settings: LoadSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """The master's environment without ``KEELHAUL_LOAD_*`` (the master decides for the
    workers), plus the credentials given on the master's command line."""
    env = {k: v for k, v in environ.items() if not k.startswith("KEELHAUL_LOAD_")}
    if settings.username is not None and settings.password is not None:
        env[ENV_USERNAME] = settings.username
        env[ENV_PASSWORD] = settings.password.get_secret_value()
    return env


class LocalWorkers:
    """The worker processes this master started, by pid."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], env: Mapping[str, str], count: int) -> None:
        for _ in range(count):
            self.procs.append(
                subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def exited(self) -> list[tuple[int, int]]:
        """``(pid, exit code)`` of those that have ended."""
        return [(p.pid, rc) for p in self.procs if (rc := p.poll()) is not None]

    def stop(self, grace_s: float = 10.0) -> None:
        """Wait ``grace_s`` for them to end (the master told them to quit), then SIGTERM,
        then SIGKILL, each by pid."""
        deadline = time.monotonic() + grace_s
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            for proc in self.procs:
                if proc.poll() is None and sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, sig)
            for proc in self.procs:
                left = max(0.1, deadline - time.monotonic())
                try:
                    proc.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    continue
            if all(p.poll() is not None for p in self.procs):
                return
            deadline = time.monotonic() + 3.0
        for proc in self.procs:  # pragma: no cover - SIGKILL cannot be refused
            proc.wait()

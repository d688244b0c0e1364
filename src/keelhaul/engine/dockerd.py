"""A private ``dockerd``: its own socket, data root, exec root and pidfile, never the system's.

``make images`` and the end-to-end tests start one the same way: as root, ``--storage-driver
vfs`` (works on any file system, no kernel module), ``--iptables=false --bridge=none`` (no
host firewall rule and no ``docker0``) and an empty ``--config-file`` (the host's
``/etc/docker/daemon.json`` is not read). A published port binds where its spec says:
dockerd's ``--ip`` only concerns the default bridge, absent here, so a compose file must
name the address (``stack render --publish-address``). The data root persists (it is the
image cache); everything else lives in a fresh run directory removed at stop. One dockerd
per data root at a time: an exclusive ``flock`` beside it is held while the daemon runs.

User-defined bridge networks (what a compose project creates) still work without
``docker0``; published ports go through ``docker-proxy`` (userland), which needs no
iptables rule. 127.0.0.0/8 is an insecure registry range for every dockerd (built in):
plain http to a loopback registry works, and https to one is not verified.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from keelhaul.errors import ComponentError, MissingBinaryError
from keelhaul.stack.procs import is_alive

__all__ = ["DOCKER", "DOCKERD", "Dockerd", "running_dockerd"]

DOCKER = Path("/usr/bin/docker")
"""Debian's client (docker.io). A newer client elsewhere on PATH may not speak to 20.10."""
DOCKERD = Path("/usr/sbin/dockerd")
_LOCK_WAIT = 600.0
_START_WAIT = 90.0
_STOP_WAIT = 60.0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Dockerd:
    """One private daemon. ``start()`` ... ``stop()`` (or ``with running_dockerd(...)``)."""

    def __init__(self, data_root: Path, *, extra_args: Sequence[str] = ()) -> None:
        for binary, package in ((DOCKERD, "docker.io"), (DOCKER, "docker.io")):
            if not binary.exists():
                raise MissingBinaryError(str(binary), package)
        self.data_root = data_root
        self.extra_args = tuple(extra_args)
        self.run_dir: Path | None = None
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None

    # --- paths -----------------------------------------------------------------------------
    def _run(self) -> Path:
        if self.run_dir is None:
            raise ComponentError("dockerd", "not started")
        return self.run_dir

    @property
    def socket(self) -> Path:
        return self._run() / "docker.sock"

    @property
    def host(self) -> str:
        """``DOCKER_HOST`` for every client of this daemon."""
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self._run() / "dockerd.log"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The caller's environment, pointed at this daemon only."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "KEELHAUL_"))}
        env["DOCKER_HOST"] = self.host
        env.update(extra or {})
        return env

    # --- life cycle ------------------------------------------------------------------------
    def _acquire(self) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        lock = (self.data_root.parent / f"{self.data_root.name}.lock").open("ab")
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise ComponentError(
                        "dockerd", f"another dockerd holds {self.data_root} (its .lock)"
                    ) from None
                time.sleep(0.5)
        self._lock = lock

    def argv(self) -> list[str]:
        run = self._run()
        return [
            str(DOCKERD),
            "--host", self.host,
            "--data-root", str(self.data_root),
            "--exec-root", str(run / "exec"),
            "--pidfile", str(run / "dockerd.pid"),
            "--config-file", str(run / "daemon.json"),
            "--storage-driver", "vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--bridge", "none",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        if os.geteuid() != 0:
            raise ComponentError("dockerd", "runs as root only (the vfs driver, runc)")
        self._acquire()
        try:
            # short: the socket path must fit a sockaddr_un (108 bytes)
            self.run_dir = Path(tempfile.mkdtemp(prefix="kh-dockerd-", dir="/tmp"))
            (self.run_dir / "daemon.json").write_text("{}\n")
            with self.log.open("ab") as log:
                self._proc = subprocess.Popen(
                    self.argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pid = self._proc.pid
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_WAIT
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ComponentError("dockerd", "exited while starting", _tail(self.log))
            if self.socket.exists():
                probe = self.docker("version", "--format", "{{.Server.Version}}", check=False)
                if probe.returncode == 0:
                    return
            time.sleep(0.3)
        raise ComponentError("dockerd", f"not ready after {_START_WAIT:.0f} s", _tail(self.log))

    def _containerd_pid(self) -> int | None:
        """The daemon's own containerd (it starts one when no system one runs)."""
        if self.run_dir is None:
            return None
        for path in (self.run_dir / "exec" / "containerd").glob("containerd.pid"):
            with contextlib.suppress(OSError, ValueError):
                return int(path.read_text().strip())
        return None

    def stop(self) -> None:
        """SIGTERM by pid (dockerd stops its containers and its containerd), SIGKILL after
        a minute; then the run directory goes and the data root's lock is released."""
        containerd = self._containerd_pid()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if containerd is not None and is_alive(containerd):
            with contextlib.suppress(ProcessLookupError):
                os.kill(containerd, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while is_alive(containerd) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.kill(containerd, signal.SIGKILL)
        self.pid = None
        if self.run_dir is not None:
            netns = self.run_dir / "exec" / "netns"
            if netns.is_dir():  # network namespaces dockerd bind-mounted and left behind
                for entry in netns.iterdir():
                    subprocess.run(["umount", "-l", str(entry)], check=False, capture_output=True)
            subprocess.run(["umount", "-l", str(netns)], check=False, capture_output=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def __enter__(self) -> Dockerd:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- clients -----------------------------------------------------------------------------
    def docker(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Debian's ``docker`` against this daemon; ``check``: a failure raises with its
        stderr (the CLI's own words, never a secret: secrets go through stdin)."""
        done = subprocess.run(
            [str(DOCKER), *args],
            input=input,
            capture_output=True,
            env=self.env(env),
            timeout=timeout,
            check=False,
        )
        result = subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise ComponentError("docker", f"docker {args[0]} failed: {result.stderr.strip()}")
        return result

    def ids(self, kind: str, label: str) -> set[str]:
        """Ids of the containers, networks or volumes carrying ``label`` (key=value)."""
        listing = {
            "container": ("ps", "-aq"),
            "network": ("network", "ls", "-q"),
            "volume": ("volume", "ls", "-q"),
        }[kind]
        out = self.docker(*listing, "--filter", f"label={label}").stdout
        return set(out.split())

    def inspect(self, *names: str) -> list[dict[str, object]]:
        out = self.docker("inspect", *names).stdout
        parsed: list[dict[str, object]] = json.loads(out)
        return parsed


@contextlib.contextmanager
def running_dockerd(data_root: Path, *, extra_args: Sequence[str] = ()) -> Iterator[Dockerd]:
    daemon = Dockerd(data_root, extra_args=extra_args)
    with daemon:
        yield daemon

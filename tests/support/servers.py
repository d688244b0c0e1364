"""Real servers the tests start on free loopback ports, stopped by pid."""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from keelhaul.netutil import wait_for_port

__all__ = ["RedisServer", "spawn_redis"]


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    extra: tuple[str, ...] = ()
    """More redis-server options (``--requirepass``, ...), kept for a restart."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def start(self) -> None:
        """(Re)start on the same port, e.g. after a test killed it."""
        self.proc = spawn_redis(self.port, self.log, *self.extra)


def spawn_redis(port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
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
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if not wait_for_port("127.0.0.1", port, 10):
        proc.kill()
        raise RuntimeError(f"redis-server did not start; see {log}")
    return proc

"""One JSON line per token request: who, from where, asked for what, got what, how fast.

Secrets never reach this module: it is handed names, scopes and outcomes only.

Each line is one ``write(2)`` on an ``O_APPEND`` descriptor, so lines from several
gunicorn workers never interleave. This sits on the token endpoint's hot path, so it skips
the ``logging`` machinery (a record, a formatter, a lock and, for ``WatchedFileHandler``, a
``stat`` per line): the file is re-opened when logrotate moved it, checked once a second.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping

from keelhaul.auth.settings import AuditSettings

__all__ = ["AuditLog"]

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_RECHECK_SECONDS = 1.0


class AuditLog:
    def __init__(
        self, settings: AuditSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = settings.enabled
        self._path = settings.path
        self._clock = clock
        self._fd = 2  # stderr unless a file is configured
        self._inode = 0
        self._checked = 0.0
        self._second = -1
        self._stamp = ""
        if self.enabled and self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        assert self._path is not None
        self._fd = os.open(self._path, _FLAGS, 0o640)
        self._inode = os.fstat(self._fd).st_ino
        self._checked = self._clock()

    def _reopen_if_rotated(self) -> None:
        now = self._clock()
        if now - self._checked < _RECHECK_SECONDS:
            return
        self._checked = now
        try:
            moved = os.stat(self._path).st_ino != self._inode  # type: ignore[arg-type]
        except FileNotFoundError:
            moved = True
        if moved:
            old = self._fd
            self._open()
            os.close(old)

    def timestamp(self, now: float | None = None) -> str:
        """UTC ``YYYY-MM-DDTHH:MM:SSZ``, formatted once per second (the lines' ``ts``)."""
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._stamp

    def record(self, fields: Mapping[str, object]) -> None:
        if not self.enabled:
            return
        line = json.dumps(fields, separators=(",", ":"), default=str).encode("utf-8") + b"\n"
        if self._path is not None:
            self._reopen_if_rotated()
        os.write(self._fd, line)

    def close(self) -> None:
        if self._fd > 2:
            os.close(self._fd)
            self._fd = 2

"""Follow a growing log file: only lines written after we started, whole lines only."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LogTail"]


class LogTail:
    """``read_lines()`` returns the complete lines appended since the previous call.

    Starts at the end of the file (what was there before is not this run's). Survives
    rotation (a new inode) and truncation by starting again at the new file's beginning.
    Reads at most ``max_bytes`` per call; the rest waits for the next call, and
    ``skipped_bytes`` counts what was dropped when a call's backlog exceeds ``max_backlog``.
    """

    def __init__(
        self, path: Path, *, max_bytes: int = 8 << 20, max_backlog: int = 64 << 20
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_backlog = max_backlog
        self.skipped_bytes = 0
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        self._inode, self._offset = st.st_ino, st.st_size

    def read_lines(self) -> list[bytes]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        if self._inode != st.st_ino or st.st_size < self._offset:
            self._inode, self._offset, self._partial = st.st_ino, 0, b""
        backlog = st.st_size - self._offset
        if backlog <= 0:
            return []
        if backlog > self.max_backlog:
            # too far behind to be useful: jump to the newest data
            self.skipped_bytes += backlog - self.max_bytes
            self._offset = st.st_size - self.max_bytes
            self._partial = b""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, min(backlog, self.max_bytes), self._offset)
        finally:
            os.close(fd)
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return [line for line in lines if line]

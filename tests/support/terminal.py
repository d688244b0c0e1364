"""A process started on a pseudo-terminal, as a person at a terminal runs it."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
from collections.abc import Mapping

__all__ = ["on_pty"]


def on_pty(
    argv: list[str], env: Mapping[str, str], rows: int = 40, columns: int = 120
) -> tuple[subprocess.Popen[bytes], int]:
    """``argv`` with stdin, stdout and stderr on a new ``columns`` x ``rows`` pseudo-terminal;
    the process and the terminal's master side (the caller reads it, then closes it)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=dict(env), close_fds=True
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return proc, master

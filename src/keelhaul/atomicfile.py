"""Writing a file so that a reader never sees half of it, nor wider permissions than asked.

The one write-then-rename of the code base: reports, worker statistics, ``stack.json``,
keys and certificates, rendered secrets, OCI layout files all go through :func:`write_bytes`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from keelhaul.errors import KeelhaulError

__all__ = ["write_bytes", "write_text"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def write_bytes(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o644,
    fsync: bool = False,
    exclusive: bool = False,
    error: type[KeelhaulError] | None = KeelhaulError,
) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    The temporary file is created with ``mode`` (``O_EXCL``), so a secret is never readable
    by others, not even for a moment. ``fsync`` makes the content durable before the rename
    (state that must survive a crash). ``exclusive`` refuses to replace an existing file
    (``FileExistsError``; e.g. a key that must not be overwritten). The parent directory is
    created. Failures raise ``error`` with a one-line message, or the ``OSError`` itself
    when ``error`` is ``None``.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), mode)
                out.write(data)
                if fsync:
                    out.flush()
                    os.fsync(out.fileno())
            if exclusive:
                os.link(tmp, path)  # fails if path exists; atomic like rename
            else:
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    except OSError as exc:
        if error is None:
            raise
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None


def write_text(
    path: Path,
    text: str,
    *,
    mode: int = 0o644,
    fsync: bool = False,
    exclusive: bool = False,
    error: type[KeelhaulError] | None = KeelhaulError,
) -> None:
    """:func:`write_bytes` for UTF-8 text."""
    write_bytes(
        path, text.encode("utf-8"), mode=mode, fsync=fsync, exclusive=exclusive, error=error
    )

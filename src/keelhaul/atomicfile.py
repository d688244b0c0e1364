"""Writing a report or state file so that a reader never sees half of it."""

from __future__ import annotations

import os
from pathlib import Path

from keelhaul.errors import KeelhaulError

__all__ = ["write_text"]


def write_text(path: Path, text: str, *, error: type[KeelhaulError] = KeelhaulError) -> None:
    """Temporary file + rename, creating the parent directory; failures raise ``error``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None

"""Sizes as people write them (``4096``, ``512k``, ``64MiB``, ``1.5g``). Pure.

One grammar for every part that takes a size (the image CLI's ``--chunk-size``, the load
kit's ``layer_size``): ``k``/``m``/``g`` and ``KiB``/``MiB``/``GiB`` are binary,
``kB``/``MB``/``GB`` decimal.
"""

from __future__ import annotations

import re

__all__ = ["parse_size"]

_SIZE_RE = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*")
_SIZE_UNITS = {
    None: 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 1000,
    "m": 1 << 20, "mib": 1 << 20, "mb": 1000**2,
    "g": 1 << 30, "gib": 1 << 30, "gb": 1000**3,
}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes; raises ``ValueError`` with a message fit for a user."""
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size; write e.g. 4096, 512k, 64MiB or 1g")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * _SIZE_UNITS[unit])

"""What every versioned JSON report needs: timestamps, numbers JSON can hold, stable text."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["clean", "dumps", "iso", "num"]


def iso(epoch: float, timespec: Literal["seconds", "milliseconds"] = "seconds") -> str:
    """RFC 3339 UTC with a ``Z``."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def num(value: float | None) -> float | None:
    """JSON has no NaN or infinity; round away float noise past the microsecond."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, 6)


def clean(value: Any) -> Any:
    """:func:`num` applied to every float of a nested structure (keys become strings)."""
    if isinstance(value, float):
        return num(value)
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def dumps(document: Mapping[str, Any]) -> str:
    """Stable text: keys in the order built, two-space indent, UTF-8 kept, newline at end."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

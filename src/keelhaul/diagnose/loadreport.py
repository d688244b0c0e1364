"""The load generator's own numbers, from the load kit's JSON report (``keelhaul.load/v1``).

The diagnosis takes the client side from that document, not from the load kit's objects:
the report is the load kit's published contract, and any run that wrote one (now or
earlier) can be laid next to a diagnosis of the same minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keelhaul.diagnose.signals import ClientStage

__all__ = ["ClientRun", "client_from_report"]


@dataclass(frozen=True)
class ClientRun:
    stages: tuple[ClientStage, ...]
    start: float | None
    end: float | None
    per_second: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    """Epoch second → (requests, failures), all stages but whole-image entries."""


def _f(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def client_from_report(doc: Mapping[str, Any]) -> ClientRun:
    run = doc.get("run", {}) if isinstance(doc.get("run"), Mapping) else {}
    start = _f(run.get("started_at_epoch"))
    duration = _f(run.get("duration_s"))
    composite = set(doc.get("composite_stages") or ())
    stages = []
    for row in doc.get("stages") or ():
        name = str(row.get("stage") or row.get("name") or "")
        if not name:
            continue
        count = int(row.get("count") or 0)
        stages.append(
            ClientStage(
                name=name,
                count=count,
                failures=int(row.get("failures") or 0),
                rps=_f(row.get("rps")) or 0.0,
                mean_ms=_f(row.get("mean_ms")),
                p50_ms=_f(row.get("p50_ms")),
                p99_ms=_f(row.get("p99_ms")),
            )
        )
    per_second: dict[int, tuple[int, int]] = {}
    timeline = doc.get("timeline") or {}
    for point in timeline.get("points") or ():
        if point.get("stage") in composite or point.get("stage") == "Aggregated":
            continue
        t = int(point.get("t") or 0)
        n, f = per_second.get(t, (0, 0))
        per_second[t] = (n + int(point.get("count") or 0), f + int(point.get("failures") or 0))
    end = start + duration if start is not None and duration is not None else None
    return ClientRun(tuple(stages), start, end, per_second)

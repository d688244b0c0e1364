"""What a running diagnosis shows: seconds watched and the top CPU-demand tier so far. Pure.

Read by ``keelhaul diagnose`` (its status line) and by the agent beside ``keelhaul load
--diagnose``, which writes :func:`progress_document` to ``W/progress.json`` every few
seconds for the load's live block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keelhaul.diagnose.model import Collection
from keelhaul.diagnose.signals import derive

__all__ = ["MIN_TICKS", "parse_progress", "progress_document", "progress_text", "top_cpu_tier"]

MIN_TICKS = 3
"""Readings needed before a tier's CPU demand means anything."""


def top_cpu_tier(collection: Collection) -> tuple[str, float] | None:
    """The tier with the highest CPU demand (cores) so far, the diagnosis itself left out;
    None until there is data."""
    if len(collection.ticks) < MIN_TICKS:
        return None
    tiers = {n: t for n, t in derive(collection).tiers.items() if n != "diagnosis"}
    if not tiers:
        return None
    name, tier = max(tiers.items(), key=lambda kv: kv[1].demand)
    return name, tier.demand


def progress_text(watched_s: float, duration_s: float | None, top: tuple[str, float] | None) -> str:
    """``watched 12s of 20s, highest CPU demand so far: auth (1.42 CPUs)``."""
    text = f"watched {watched_s:.0f}s" + (f" of {duration_s:g}s" if duration_s else "")
    if top is not None:
        text += f", highest CPU demand so far: {top[0]} ({top[1]:.2f} CPUs)"
    return text


def progress_document(watched_s: float, collection: Collection) -> dict[str, Any]:
    top = top_cpu_tier(collection)
    return {"watched_s": watched_s, "top": list(top) if top is not None else None}


def parse_progress(doc: Mapping[str, Any]) -> tuple[float, tuple[str, float] | None]:
    """:func:`progress_document` read back; ValueError if it is not one."""
    try:
        watched = float(doc["watched_s"])
        top = doc.get("top")
        if top is None:
            return watched, None
        return watched, (str(top[0]), float(top[1]))
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not a diagnosis progress document: {exc}") from None

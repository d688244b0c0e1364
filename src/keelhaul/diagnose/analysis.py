"""Pure: a collection (plus, optionally, the client's numbers and a profile) → the report.

:func:`analyse` is the whole pipeline after the sampling: the window, the signals, the
verdict, the waterfalls. It does no I/O, so a saved collection can be analysed again, and
the rules can be tested on recorded or synthetic data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keelhaul.diagnose.loadreport import ClientRun
from keelhaul.diagnose.model import Collection
from keelhaul.diagnose.signals import Signals, derive
from keelhaul.diagnose.verdict import HotSpot, Verdict, decide
from keelhaul.diagnose.waterfall import Waterfall, waterfalls

__all__ = ["Profile", "Report", "analyse"]


@dataclass(frozen=True)
class Profile:
    """A call-graph profile of the token service's workers (:mod:`.profile` records it)."""

    summary: Mapping[str, Any]
    dot: str
    svg: str | None = None
    hot: HotSpot | None = None
    note: str | None = None
    """Why there is no graph, or what to know about it."""


@dataclass(frozen=True)
class Report:
    collection: Collection
    signals: Signals
    verdict: Verdict
    waterfalls: tuple[Waterfall, ...]
    client: ClientRun | None = None
    profile: Profile | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


def _restrict(collection: Collection, start: float, end: float) -> Collection:
    """Ticks of the client's run: from the second it started to one after it ended (the
    proxy writes its log lines up to a second late)."""
    lo, hi = math.floor(start), math.ceil(end) + 1
    ticks = tuple(t for t in collection.ticks if lo <= t.t <= hi)
    return Collection(ticks=ticks, meta=collection.meta) if len(ticks) >= 2 else collection


def analyse(
    collection: Collection,
    *,
    client: ClientRun | None = None,
    profile: Profile | None = None,
) -> Report:
    window = collection
    if client is not None and client.start is not None and client.end is not None:
        window = _restrict(collection, client.start, client.end)
    signals = derive(window, client.stages if client is not None else ())
    hot = profile.hot if profile is not None else None
    verdict = decide(signals, hot)
    return Report(
        collection=collection,
        signals=signals,
        verdict=verdict,
        waterfalls=tuple(waterfalls(signals)),
        client=client,
        profile=profile,
        meta=dict(collection.meta),
    )

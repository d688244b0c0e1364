"""Pure: a collection (plus, optionally, the client's numbers and a profile) → the report.

:func:`analyse` is the whole pipeline after the sampling: the window, the signals, the
verdict, the waterfalls. It does no I/O, so a saved collection can be analysed again, and
the rules can be tested on recorded or synthetic data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from keelhaul.diagnose.loadreport import ClientRun
from keelhaul.diagnose.model import Collection
from keelhaul.diagnose.signals import Signals, derive
from keelhaul.diagnose.sources import cap_confidence
from keelhaul.diagnose.verdict import HotSpot, Verdict, decide
from keelhaul.diagnose.waterfall import Waterfall, waterfalls

__all__ = ["LATE_S", "Profile", "Report", "Watched", "analyse", "watched_caveat"]

LATE_S = 2.0
"""Samples starting (or ending) this much later (earlier) than the client's run: say so.
The agent is started before the run and samples once a second, so a healthy start is
within a second; later means it was starved too (a generator starved of CPU starts it)."""


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


@dataclass(frozen=True)
class Watched:
    """When the diagnosis's own samples of ``what`` began and ended."""

    first: float
    last: float
    what: str = "the stack"


def watched_caveat(start: float, end: float, watched: Watched) -> tuple[str, float] | None:
    """The caveat, and the share of the run watched, when the samples began more than
    LATE_S after the run's start or ended more than LATE_S before its end; else None."""
    run = end - start
    late, early = watched.first - start, end - watched.last
    if run <= 0 or (late <= LATE_S and early <= LATE_S):
        return None
    seen = max(0.0, min(end, watched.last) - max(start, watched.first))
    why = []
    if late > LATE_S:
        why.append(
            f"its first sample came {late:.0f} s after the run began (a load generator "
            "starved of CPU starves the diagnosis agent it starts, too)"
        )
    if early > LATE_S:
        why.append(f"its last sample came {early:.0f} s before the run ended")
    return (
        f"the diagnosis watched {watched.what} only {seen:.0f} of the run's {run:.0f} s: "
        + "; ".join(why)
        + ": what it did not watch is not in the verdict",
        seen / run,
    )


def _coverage(verdict: Verdict, start: float, end: float, watched: Watched) -> Verdict:
    found = watched_caveat(start, end, watched)
    if found is None:
        return verdict
    caveat, share = found
    cap = "low" if share < 0.5 else "medium"
    return replace(
        verdict,
        confidence=cap_confidence(verdict.confidence, cap),
        caveats=(caveat, *verdict.caveats),
    )


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
    watched: Watched | None = None,
) -> Report:
    """``watched``: when the diagnosis sampled what it sampled itself (by default the
    collection's first and last tick: the local source samples the whole stack)."""
    window = collection
    if client is not None and client.start is not None and client.end is not None:
        window = _restrict(collection, client.start, client.end)
    signals = derive(window, client.stages if client is not None else ())
    hot = profile.hot if profile is not None else None
    verdict = decide(signals, hot)
    if watched is None and collection.ticks:
        watched = Watched(collection.ticks[0].t, collection.ticks[-1].t)
    if client is not None and client.start and client.end and watched is not None:
        verdict = _coverage(verdict, client.start, client.end, watched)
    return Report(
        collection=collection,
        signals=signals,
        verdict=verdict,
        waterfalls=tuple(waterfalls(signals)),
        client=client,
        profile=profile,
        meta=dict(collection.meta),
    )

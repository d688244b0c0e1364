"""What the sampler records: one :class:`Tick` per second, one :class:`Reading` per collector.

Collectors report three kinds of values, all plain floats, so that every later step is a
pure function over this data:

* ``gauges``: what is true now (in-flight requests, accept-queue length, connected clients);
* ``counters``: totals since the collector started (requests, CPU seconds); the analysis
  turns consecutive ones into rates;
* ``hists``: cumulative Prometheus-style histograms (:class:`Hist`); the difference of two
  is the histogram of what happened in between, so percentiles are exact per window.

A collection is written as JSON by the diagnosis agent and read back by the process that
analyses it (:func:`Collection.to_json` / :func:`Collection.from_json`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Collection", "Hist", "HistBuilder", "Reading", "Tick"]

INF = math.inf


@dataclass(frozen=True, slots=True)
class Hist:
    """Cumulative bucket counts per upper bound (the last bound is +inf), and their sum."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float = 0.0

    @classmethod
    def empty(cls, bounds: Sequence[float]) -> Hist:
        b = tuple(bounds)
        if not b or b[-1] != INF:
            b = (*b, INF)
        return cls(b, (0.0,) * len(b), 0.0)

    @property
    def count(self) -> float:
        return self.counts[-1] if self.counts else 0.0

    def minus(self, older: Hist | None) -> Hist:
        """What happened between ``older`` and this one (a reset counts as a fresh start)."""
        if older is None or older.bounds != self.bounds or older.count > self.count:
            return self
        counts = tuple(max(0.0, a - b) for a, b in zip(self.counts, older.counts, strict=True))
        return Hist(self.bounds, counts, max(0.0, self.sum - older.sum))

    def plus(self, other: Hist) -> Hist:
        if other.bounds != self.bounds:
            raise ValueError("histograms with different buckets cannot be added")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return Hist(self.bounds, counts, self.sum + other.sum)

    def mean(self) -> float | None:
        return self.sum / self.count if self.count > 0 else None

    def quantile(self, q: float) -> float | None:
        """Prometheus' ``histogram_quantile``: linear within the bucket that holds rank q."""
        total = self.count
        if total <= 0:
            return None
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.counts, strict=True):
            if cumulative >= rank:
                if bound == INF:
                    return lower_bound
                in_bucket = cumulative - lower_count
                if in_bucket <= 0:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket
            lower_bound, lower_count = bound, cumulative
        return lower_bound

    def share_above(self, threshold: float) -> float | None:
        """Share of observations above the bucket bound nearest to ``threshold``."""
        total = self.count
        if total <= 0:
            return None
        below = 0.0
        for bound, cumulative in zip(self.bounds, self.counts, strict=True):
            if bound <= threshold:
                below = cumulative
        return (total - below) / total

    def as_json(self) -> dict[str, Any]:
        return {
            "bounds": [b if b != INF else "+Inf" for b in self.bounds],
            "counts": list(self.counts),
            "sum": self.sum,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Hist:
        bounds = tuple(INF if b == "+Inf" else float(b) for b in doc["bounds"])
        return cls(bounds, tuple(float(c) for c in doc["counts"]), float(doc["sum"]))


class HistBuilder:
    """A mutable cumulative histogram for collectors that count observations themselves."""

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        b = tuple(bounds)
        self._bounds = b if b and b[-1] == INF else (*b, INF)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def freeze(self) -> Hist:
        return Hist(
            self._bounds, tuple(float(c) for c in itertools.accumulate(self._counts)), self._sum
        )


@dataclass(frozen=True, slots=True)
class Reading:
    """What one collector saw at one tick. ``error`` set: the collector could not read."""

    gauges: Mapping[str, float] = field(default_factory=dict)
    counters: Mapping[str, float] = field(default_factory=dict)
    hists: Mapping[str, Hist] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    """Evidence worth quoting (log lines); bounded by the collector."""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.gauges:
            doc["g"] = dict(self.gauges)
        if self.counters:
            doc["c"] = dict(self.counters)
        if self.hists:
            doc["h"] = {k: h.as_json() for k, h in self.hists.items()}
        if self.notes:
            doc["n"] = list(self.notes)
        if self.error is not None:
            doc["e"] = self.error
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Reading:
        return cls(
            gauges={k: float(v) for k, v in doc.get("g", {}).items()},
            counters={k: float(v) for k, v in doc.get("c", {}).items()},
            hists={k: Hist.from_json(v) for k, v in doc.get("h", {}).items()},
            notes=tuple(str(n) for n in doc.get("n", ())),
            error=doc.get("e"),
        )


@dataclass(frozen=True, slots=True)
class Tick:
    """All collectors at one wall-clock second ``t`` (epoch seconds, whole)."""

    t: float
    readings: Mapping[str, Reading]

    def reading(self, collector: str) -> Reading | None:
        return self.readings.get(collector)

    def gauge(self, collector: str, key: str) -> float | None:
        r = self.readings.get(collector)
        return None if r is None or r.error is not None else r.gauges.get(key)

    def counter(self, collector: str, key: str) -> float | None:
        r = self.readings.get(collector)
        return None if r is None or r.error is not None else r.counters.get(key)

    def hist(self, collector: str, key: str) -> Hist | None:
        r = self.readings.get(collector)
        return None if r is None or r.error is not None else r.hists.get(key)


@dataclass(frozen=True)
class Collection:
    """A diagnosis run's raw data: the ticks, and what was watched (``meta``)."""

    ticks: tuple[Tick, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": dict(self.meta),
            "ticks": [
                {"t": tick.t, "r": {name: r.as_json() for name, r in tick.readings.items()}}
                for tick in self.ticks
            ],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Collection:
        ticks = tuple(
            Tick(
                t=float(item["t"]),
                readings={name: Reading.from_json(r) for name, r in item["r"].items()},
            )
            for item in doc.get("ticks", ())
        )
        return cls(ticks=ticks, meta=dict(doc.get("meta", {})))

"""Prometheus exposition text → plain values and :class:`~keelhaul.diagnose.model.Hist`. Pure.

Parsing is prometheus_client's own (``text_string_to_metric_families``); the token
service's multiprocess directory yields the same family objects, so both go through
:func:`flatten`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keelhaul.diagnose.model import Hist

__all__ = ["Samples", "flatten", "keep_families", "parse_text"]

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Samples:
    """Every sample of a scrape, by sample name (``x_bucket``, ``x_sum``, ``y_total``...)."""

    by_name: Mapping[str, list[tuple[Labels, float]]]

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample with these labels (others ignored), or the sum when several match."""
        found = [v for ls, v in self.by_name.get(name, ()) if _matches(ls, labels)]
        return sum(found) if found else None

    def by(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        """Samples summed per value of the ``keys`` labels."""
        out: dict[tuple[str, ...], float] = defaultdict(float)
        for ls, v in self.by_name.get(name, ()):
            d = dict(ls)
            out[tuple(d.get(k, "") for k in keys)] += v
        return dict(out)

    def hists(self, name: str, *keys: str) -> dict[tuple[str, ...], Hist]:
        """Histogram ``name`` per value of ``keys`` (other labels, ``pid`` too, summed)."""
        buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(lambda: defaultdict(float))
        for ls, v in self.by_name.get(f"{name}_bucket", ()):
            d = dict(ls)
            le = d.get("le")
            if le is None:
                continue
            bound = math.inf if le in ("+Inf", "Inf", "inf") else float(le)
            buckets[tuple(d.get(k, "") for k in keys)][bound] += v
        sums = self.by(f"{name}_sum", *keys)
        out: dict[tuple[str, ...], Hist] = {}
        for key, per_bound in buckets.items():
            bounds = tuple(sorted(per_bound))
            if not bounds or bounds[-1] != math.inf:
                continue
            counts = tuple(per_bound[b] for b in bounds)
            out[key] = Hist(bounds, counts, sums.get(key, 0.0))
        return out


def _matches(labels: Labels, wanted: Mapping[str, str]) -> bool:
    d = dict(labels)
    return all(d.get(k) == v for k, v in wanted.items())


def flatten(families: Iterable[Any]) -> Samples:
    """prometheus_client ``Metric`` families (parsed or collected) → :class:`Samples`."""
    by_name: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
    for family in families:
        for sample in family.samples:
            labels = tuple(sorted((str(k), str(v)) for k, v in sample.labels.items()))
            by_name[sample.name].append((labels, float(sample.value)))
    return Samples(dict(by_name))


def keep_families(text: str, names: tuple[str, ...]) -> str:
    """Only the lines of the families named (and their ``# HELP``/``# TYPE`` lines).

    The parser reads character by character; a registry exposes hundreds of series the
    diagnosis never looks at (Go's memory statistics, request and response sizes), so
    they are dropped before parsing rather than after.
    """
    kept = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[2].startswith(names):
                kept.append(line)
        elif line.startswith(names):
            kept.append(line)
    return "\n".join(kept) + "\n"


def parse_text(text: str, families: tuple[str, ...] | None = None) -> Samples:
    """Parse exposition text; with ``families``, only the families whose names start so."""
    from prometheus_client.parser import text_string_to_metric_families

    if families is not None:
        text = keep_families(text, families)
    return flatten(text_string_to_metric_families(text))

"""Signal sources: what fed a diagnosis, and what that source cannot see. Pure.

The seam between the sources and the engine is :class:`~.model.Collection`: a source
produces ticks of readings under the collectors' keys (``procs``, ``stub_status``,
``auth``, ``registry``, ``redis``, and for the local source also ``nginx_log``, ``listen``,
``logs``) plus ``meta["source"]`` (:class:`SourceInfo`). Everything after that — the
signals, the rules, the verdict, the waterfall and the reports — is the same code.

A source is one :class:`SourceKind` in :data:`SOURCES`; adding a third one (say, an
OpenTelemetry backend) means a module that builds the collection and one record here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONFIDENCE",
    "SOURCES",
    "SourceInfo",
    "SourceKind",
    "cap_confidence",
    "resolution_cap",
]

CONFIDENCE = ("low", "medium", "high")
FINE_S = 2.0
"""Up to this resolution the rules' sample shares are as good as the local source's."""
COARSE_S = 15.0
"""Above this (a default Prometheus scrape is 15-60 s) a verdict is at most ``low``."""
MIN_STEPS = 6
"""Fewer samples than this in the window: one confidence level less."""


@dataclass(frozen=True)
class SourceKind:
    name: str
    title: str
    blind: tuple[str, ...]
    """What the local source sees and this one does not (said in every report)."""


SOURCES: Mapping[str, SourceKind] = {
    kind.name: kind
    for kind in (
        SourceKind("local", "the stack's processes, logs and status pages (stack.json)", ()),
        SourceKind(
            "prometheus",
            "Prometheus (query_range over the run's window)",
            (
                "run-queue wait (estimated from the threads found runnable at each scrape "
                "with process-exporter, a main thread counted twice removed for multi-threaded "
                "processes; not at all with cAdvisor, which shows a quota's throttling "
                "instead)",
                "accept queues",
                "nginx's per-request upstream times",
                "log lines (nginx alerts, gunicorn WORKER TIMEOUT)",
                "Redis PING round trips",
            ),
        ),
    )
}


@dataclass(frozen=True)
class SourceInfo:
    """Which source fed a collection, at what resolution, and which tiers it never saw."""

    kind: str = "local"
    resolution_s: float = 1.0
    url: str | None = None
    unseen: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        known = SOURCES.get(self.kind)
        return known.title if known is not None else self.kind

    @property
    def blind(self) -> tuple[str, ...]:
        known = SOURCES.get(self.kind)
        return known.blind if known is not None else ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "resolution_s": self.resolution_s,
            "url": self.url,
            "unseen": list(self.unseen),
            "blind": list(self.blind),
            "notes": list(self.notes),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> SourceInfo:
        """A collection's ``meta["source"]``; none (a collection from before sources): local."""
        doc = meta.get("source")
        if not isinstance(doc, Mapping):
            return cls()
        return cls(
            kind=str(doc.get("kind", "local")),
            resolution_s=float(doc.get("resolution_s") or 1.0),
            url=doc.get("url"),
            unseen=tuple(str(t) for t in doc.get("unseen") or ()),
            notes=tuple(str(n) for n in doc.get("notes") or ()),
        )


def resolution_cap(resolution_s: float, steps: int) -> str:
    """The highest confidence data this coarse allows."""
    level = 2 if resolution_s <= FINE_S else 1 if resolution_s <= COARSE_S else 0
    if steps < MIN_STEPS:
        level -= 1
    return CONFIDENCE[max(level, 0)]


def cap_confidence(confidence: str, cap: str) -> str:
    return CONFIDENCE[min(CONFIDENCE.index(confidence), CONFIDENCE.index(cap))]

"""Numbers you can trust: the load kit's statistics, exact and mergeable.

:class:`RunStats` records every request under its *stage* (``blob GET``, ``token``...):
count, failures, body bytes, and its latency in whole microseconds into an HdrHistogram
(1 µs .. 1 h, 3 significant digits), plus the same per wall-clock second. Workers ship
what changed (:meth:`RunStats.take_delta`); the master adds it (:meth:`RunStats.merge`).
Adding is exact, so the master's counts are the sums of the workers' and its percentiles
are those of one histogram of all their samples.

Cost: :meth:`RunStats.record` is the load generator's hot path. It does one bucket
computation and a handful of dict updates, with no allocation once a stage and second exist
(see ``bench/load_stats_bench.py`` for the measured cost). A few seconds after a second has
passed, its histograms are packed into arrays, so a long run's timeline stays small.

Not thread-safe: one instance per process, used from gevent greenlets (which never switch
inside these methods).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from keelhaul.load import histogram as hdr
from keelhaul.load.layer import Bucket, Layer, Stage, decode_layer, encode_layer
from keelhaul.load.scenarios import FLOW_ENTRIES
from keelhaul.load.timeline import AGGREGATED, TimelinePoint, timeline_points

__all__ = [
    "AGGREGATED",
    "COMPOSITE_STAGES",
    "MAX_ERROR_LENGTH",
    "OTHER_ERRORS",
    "STAGE_ORDER",
    "ErrorCount",
    "IterationCounts",
    "LiveView",
    "RunStats",
    "StageSummary",
    "order_stages",
]

STAGE_ORDER = (
    "ping",
    "token",
    "manifest HEAD",
    "manifest GET",
    "blob HEAD",
    "blob GET",
    "upload start",
    "upload PATCH",
    "upload PUT",
    "manifest PUT",
    "tags",
    "catalog",
    "image pull",
    "image push",
)
"""Known stages in the order reports list them; other names follow, alphabetically."""

COMPOSITE_STAGES = FLOW_ENTRIES
"""Whole-flow entries (one per registered scenario): their requests are already counted under
their own stages, so they are left out of the ``Aggregated`` row (and its timeline) by
default."""

OTHER_ERRORS = "(other errors)"
NO_MESSAGE = "(no message)"
MAX_ERROR_LENGTH = 300
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
SEAL_AFTER_S = 5  # a second's histograms are packed this long after a later second began


def order_stages(names: Iterable[str], composite: Iterable[str] = COMPOSITE_STAGES) -> list[str]:
    """Known request stages in :data:`STAGE_ORDER`, then unknown ones alphabetically, then
    the whole-image entries."""
    rank = {name: i for i, name in enumerate(STAGE_ORDER)}
    composite = frozenset(composite)
    return sorted(
        set(names),
        key=lambda n: (n in composite, n not in rank, rank.get(n, 0), n),
    )


@dataclass(frozen=True, slots=True)
class StageSummary:
    """One row of the summary. Latencies in milliseconds; ``None`` only when ``count == 0``
    (the ``Aggregated`` row of a run without requests)."""

    name: str
    count: int
    failures: int
    fail_ratio: float
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    min_ms: float | None
    mean_ms: float | None
    bytes: int
    bytes_per_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ErrorCount:
    stage: str
    message: str
    count: int


@dataclass(frozen=True, slots=True)
class IterationCounts:
    """The open model's pacing: iterations ``scheduled`` by the pacer, how many started
    ``late`` (with their lag) and how many were ``dropped`` (never started)."""

    scheduled: int
    late: int
    dropped: int
    max_lag_ms: float
    mean_lag_ms: float
    per_second: tuple[tuple[int, int, int], ...]  # (epoch second, late, dropped)


@dataclass(frozen=True, slots=True)
class LiveView:
    """A cheap reading for a live display (:meth:`RunStats.live`): whole-run counts per stage
    (``(count, failures, bytes)``), the open model's counters, the most recent error, and
    per-stage buckets summed over a few recent seconds."""

    stages: Mapping[str, tuple[int, int, int]]
    composite: frozenset[str]
    scheduled: int
    late: int
    dropped: int
    last_error: tuple[str, str] | None
    window: Mapping[str, Bucket]
    """Per stage over the window; histograms for the ``composite`` entries only."""
    window_seconds: tuple[int, int]
    """First and last epoch second of ``window`` (inclusive)."""


def _row(name: str, stage: Stage, duration_s: float) -> StageSummary:
    if not stage.count:
        none = None
        return StageSummary(
            name, 0, 0, 0.0, 0.0, none, none, none, none, none, none, none, none, 0, 0.0
        )
    p50, p90, p95, p99, p999 = hdr.percentiles(
        stage.hist, stage.count, PERCENTILES, cap=stage.max_us
    )
    return StageSummary(
        name=name,
        count=stage.count,
        failures=stage.failures,
        fail_ratio=stage.failures / stage.count,
        rps=stage.count / duration_s if duration_s > 0 else 0.0,
        p50_ms=p50 / 1000,
        p90_ms=p90 / 1000,
        p95_ms=p95 / 1000,
        p99_ms=p99 / 1000,
        p999_ms=p999 / 1000,
        max_ms=stage.max_us / 1000,
        min_ms=stage.min_us / 1000,
        mean_ms=stage.sum_us / stage.count / 1000,
        bytes=stage.bytes,
        bytes_per_s=stage.bytes / duration_s if duration_s > 0 else 0.0,
    )


class RunStats:
    """Statistics of one load run in one process (or merged from many).

    ``clock`` gives epoch seconds for requests recorded without ``when``; ``composite`` names
    the whole-image entries left out of ``Aggregated``; at most ``max_errors`` distinct
    (stage, message) pairs are kept, later ones count under ``(other errors)``.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        composite: Iterable[str] = COMPOSITE_STAGES,
        max_errors: int = 100,
    ) -> None:
        self._clock = clock
        self.composite = frozenset(composite)
        self.max_errors = max_errors
        self._total = Layer()  # already shipped by take_delta
        self._pending = Layer()  # recorded or merged since
        self._error_keys: set[tuple[str, str]] = set()
        self._seq = 0
        self._seen: dict[str, int] = {}
        self.duplicate_deltas = 0
        self.last_error: tuple[str, str] | None = None
        """(stage, message) of the latest failure recorded or merged (for live displays)."""

    # --- recording (hot path) -------------------------------------------------------------

    def record(
        self,
        name: str,
        latency_ms: float,
        length: int,
        failed: bool,
        when: float | None = None,
        error: str | None = None,
    ) -> None:
        """One request (or one whole-image iteration) of stage ``name``.

        ``latency_ms`` covers the whole body transfer; ``length`` is the body bytes counted
        for the stage (response body, or request body for uploads); ``when`` is the epoch
        second it belongs to (default: now, i.e. its end; open-model iterations pass their
        intended start). ``error`` is counted only when ``failed``.
        """
        layer = self._pending
        try:
            us = int(latency_ms * 1000.0 + 0.5)
        except (ValueError, OverflowError):  # NaN or infinity: a broken timer; clamp, count
            us = hdr.HIGHEST_US + 1
        if us < 0:
            us = 0
        elif us > hdr.HIGHEST_US:
            us = hdr.HIGHEST_US
            layer.clamped += 1
        index = hdr.index_of(us)
        stage = layer.stages.get(name)
        if stage is None:
            stage = layer.stages[name] = Stage()
        stage.count += 1
        stage.bytes += length
        stage.sum_us += us
        if us < stage.min_us:  # noqa: PLR1730 - a compare is cheaper than min() here
            stage.min_us = us
        if us > stage.max_us:  # noqa: PLR1730
            stage.max_us = us
        hist = stage.hist
        hist[index] = hist.get(index, 0) + 1
        second = int(self._clock() if when is None else when)
        row = layer.timeline.get(second)
        if row is None:
            row = layer.timeline[second] = {}
            self._seal(second)
        bucket = row.get(name)
        if bucket is None:
            bucket = row[name] = Bucket()
        bucket.count += 1
        bucket.bytes += length
        if us > bucket.max_us:  # noqa: PLR1730
            bucket.max_us = us
        hist = bucket.hist
        hist[index] = hist.get(index, 0) + 1
        if failed:
            stage.failures += 1
            bucket.failures += 1
            key = self._admit(name, error[:MAX_ERROR_LENGTH] if error else NO_MESSAGE)
            layer.errors[key] = layer.errors.get(key, 0) + 1
            self.last_error = key

    def scheduled(self, n: int = 1) -> None:
        """The open-model pacer intended to start ``n`` more iterations."""
        self._pending.scheduled += n

    def late(self, lag_ms: float, when: float | None = None) -> None:
        """One iteration started ``lag_ms`` after its intended start (beyond the pacer's
        tolerance); ``when`` is its intended start (default: now). Fits ``on_late``."""
        layer = self._pending
        lag_us = max(0, int(lag_ms * 1000.0 + 0.5))
        layer.late += 1
        layer.lag_sum_us += lag_us
        layer.lag_max_us = max(layer.lag_max_us, lag_us)
        second = int(self._clock() if when is None else when)
        layer.open_seconds.setdefault(second, [0, 0])[0] += 1

    def dropped(self, when: float | None = None, *, n: int = 1) -> None:
        """``n`` iterations were never started (no free user in time); ``when`` is their
        intended start (default: now). Fits the pacer's ``on_dropped(when)`` as it is."""
        layer = self._pending
        layer.dropped += n
        second = int(self._clock() if when is None else when)
        layer.open_seconds.setdefault(second, [0, 0])[1] += n

    def _seal(self, newest: int) -> None:
        """A new second began: pack the histograms of seconds long past (see Bucket)."""
        cutoff = newest - SEAL_AFTER_S
        self._pending.seal_before(cutoff)
        self._total.seal_before(cutoff)

    def _admit(self, stage: str, message: str) -> tuple[str, str]:
        key = (stage, message)
        if key in self._error_keys:
            return key
        if len(self._error_keys) < self.max_errors:
            self._error_keys.add(key)
            return key
        return (stage, OTHER_ERRORS)

    # --- shipping and merging -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything so far, JSON-serialisable (``keelhaul.runstats/1``)."""
        return encode_layer(self._view(), kind="snapshot", seq=0)

    def take_delta(self) -> dict[str, Any]:
        """What was recorded or merged since the previous call (the first call: since the
        start). Every sample is in exactly one delta; ``seq`` numbers them 1, 2, 3..."""
        self._seq += 1
        doc = encode_layer(self._pending, kind="delta", seq=self._seq)
        self._total.absorb(self._pending, steal=True)
        self._pending = Layer()
        return doc

    def merge(self, doc: Mapping[str, Any], *, source: str | None = None) -> bool:
        """Add a delta or a snapshot. With ``source`` (e.g. a worker's id), a delta whose
        ``seq`` was already merged from that source is skipped (returns False), and a gap in
        the numbering is counted in ``lost_deltas``. Raises StatsFormatError, having added
        nothing, if the document does not parse."""
        layer, kind, seq = decode_layer(doc)
        if source is not None and kind == "delta":
            last = self._seen.get(source)
            if last is not None:
                if seq <= last:
                    self.duplicate_deltas += 1
                    return False
                layer.lost_deltas += seq - last - 1
            self._seen[source] = seq
        admitted: dict[tuple[str, str], int] = {}
        for (stage, message), count in layer.errors.items():
            key = self._admit(stage, message[:MAX_ERROR_LENGTH])
            admitted[key] = admitted.get(key, 0) + count
        layer.errors = admitted
        if admitted:  # a delta keeps no order: its most frequent error stands for it
            self.last_error = max(admitted.items(), key=lambda kv: kv[1])[0]
        self._pending.absorb(layer, steal=True)
        if layer.timeline:
            self._seal(max(layer.timeline))
        return True

    def restore(self, delta: Mapping[str, Any]) -> None:
        """Take back a delta that could not be sent: its samples go into the next one, and
        if it was the latest, its ``seq`` is reused (so the master sees no gap)."""
        layer, kind, seq = decode_layer(delta)
        if kind != "delta":
            raise ValueError("restore() takes a document made by take_delta()")
        self._pending.absorb(layer, steal=True)
        if seq == self._seq:
            self._seq -= 1

    @classmethod
    def from_snapshot(cls, doc: Mapping[str, Any], **kwargs: Any) -> RunStats:
        stats = cls(**kwargs)
        stats.merge(doc)
        return stats

    def reset(self) -> None:
        """Forget all samples (a new run). ``seq`` keeps counting, so a master that saw
        this instance's earlier deltas never mistakes new ones for duplicates."""
        self._total = Layer()
        self._pending = Layer()
        self._error_keys = set()
        self._seen = {}
        self.duplicate_deltas = 0
        self.last_error = None

    # --- reading --------------------------------------------------------------------------

    def _view(self) -> Layer:
        if self._total.is_empty():
            return self._pending
        if self._pending.is_empty():
            return self._total
        view = self._total.copy()
        view.absorb(self._pending)
        return view

    def live(self, first_s: int, last_s: int) -> LiveView:
        """What a progress display needs, without copying the run's timeline: whole-run
        counters, and the buckets of seconds ``first_s`` .. ``last_s`` summed per stage.

        Only the whole-flow entries' window buckets carry a histogram (the display's
        percentiles): summing a request stage's histograms over five seconds was most of a
        frame's cost (about a thousand distinct values a second each), for nothing shown."""
        stages: dict[str, tuple[int, int, int]] = {}
        window: dict[str, Bucket] = {}
        composite = self.composite
        layers = (self._total, self._pending)
        for layer in layers:
            for name, stage in layer.stages.items():
                count, failures, length = stages.get(name, (0, 0, 0))
                stages[name] = (
                    count + stage.count,
                    failures + stage.failures,
                    length + stage.bytes,
                )
            for second in range(first_s, last_s + 1):
                row = layer.timeline.get(second)
                if row is None:
                    continue
                for name, bucket in row.items():
                    mine = window.get(name)
                    if mine is None:
                        mine = window[name] = Bucket()
                    if name in composite:
                        mine.add(bucket)
                    else:
                        mine.add_counts(bucket)
        return LiveView(
            stages=stages,
            composite=self.composite,
            scheduled=sum(layer.scheduled for layer in layers),
            late=sum(layer.late for layer in layers),
            dropped=sum(layer.dropped for layer in layers),
            last_error=self.last_error,
            window=window,
            window_seconds=(first_s, last_s),
        )

    @property
    def count(self) -> int:
        """Requests recorded in every stage (whole-image entries included)."""
        return sum(s.count for s in self._view().stages.values())

    @property
    def lost_deltas(self) -> int:
        return self._view().lost_deltas

    @property
    def clamped(self) -> int:
        """Latencies over an hour, recorded as one hour."""
        return self._view().clamped

    def stage_names(self) -> list[str]:
        return order_stages(self._view().stages, self.composite)

    def summary(self, duration_s: float) -> list[StageSummary]:
        """One row per stage (in report order), then the ``Aggregated`` row."""
        view = self._view()
        rows = [
            _row(name, view.stages[name], duration_s)
            for name in order_stages(view.stages, self.composite)
        ]
        total = Stage()
        for name, stage in view.stages.items():
            if name not in self.composite:
                total.add(stage)
        rows.append(_row(AGGREGATED, total, duration_s))
        return rows

    def timeline(self, step_s: int = 1) -> list[TimelinePoint]:
        """Per-window points with exact p50/p95/p99, including an ``Aggregated`` series."""
        return timeline_points(self._view().timeline, composite=self.composite, step_s=step_s)

    def span(self) -> tuple[int, int] | None:
        """First and last epoch second with a request or an open-model event."""
        view = self._view()
        seconds = set(view.timeline) | set(view.open_seconds)
        return (min(seconds), max(seconds)) if seconds else None

    def errors(self) -> list[ErrorCount]:
        """Error messages by count, most frequent first."""
        items = self._view().errors.items()
        ordered = sorted(items, key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
        return [ErrorCount(stage, message, count) for (stage, message), count in ordered]

    def iterations(self) -> IterationCounts:
        view = self._view()
        return IterationCounts(
            scheduled=view.scheduled,
            late=view.late,
            dropped=view.dropped,
            max_lag_ms=view.lag_max_us / 1000,
            mean_lag_ms=view.lag_sum_us / view.late / 1000 if view.late else 0.0,
            per_second=tuple((s, c[0], c[1]) for s, c in sorted(view.open_seconds.items())),
        )

    def histogram(self, stage: str) -> str:
        """The whole-run histogram of ``stage`` (or ``Aggregated``) in HdrHistogram's
        standard encoding, for any HdrHistogram tool."""
        view = self._view()
        if stage == AGGREGATED:
            merged: hdr.Sparse = {}
            for name, s in view.stages.items():
                if name not in self.composite:
                    hdr.add_into(merged, s.hist)
            return hdr.encode(merged)
        found = view.stages.get(stage)
        return hdr.encode(found.hist if found is not None else {})

"""The mergeable data behind :class:`~keelhaul.load.stats.RunStats`, and its wire form.

A :class:`Layer` is a bag of counters that adds exactly: per stage (count, failures, bytes,
latency sum/min/max, a sparse HdrHistogram), a timeline of per-(second, stage) buckets with
their own histograms, error messages with counts, and the open model's iteration counters.
Adding two layers adds every counter and every histogram bucket, so however the samples are
split between processes (and however often they are shipped), the sum is the same.

The wire form (``keelhaul.runstats/1``) is plain JSON-serialisable data; stage histograms use
HdrHistogram's standard encoding, timeline histograms a flat ``[index, count, ...]`` list
(a per-second bucket holds a few hundred samples; a dense HdrHistogram would cost more to
encode than to send). Decoding validates everything before anything is added, so a bad
document never half-merges.
"""

from __future__ import annotations

import array
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from keelhaul.errors import StatsFormatError
from keelhaul.load import histogram as hdr

__all__ = ["FORMAT", "Bucket", "Layer", "Stage", "decode_layer", "encode_layer"]

FORMAT = "keelhaul.runstats/1"
_NO_MIN = hdr.HIGHEST_US + 1


class Stage:
    """Whole-run totals of one stage."""

    __slots__ = ("bytes", "count", "failures", "hist", "max_us", "min_us", "sum_us")

    def __init__(self) -> None:
        self.count = 0
        self.failures = 0
        self.bytes = 0
        self.sum_us = 0
        self.min_us = _NO_MIN
        self.max_us = 0
        self.hist: hdr.Sparse = {}

    def add(self, other: Stage) -> None:
        self.count += other.count
        self.failures += other.failures
        self.bytes += other.bytes
        self.sum_us += other.sum_us
        self.min_us = min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)
        hdr.add_into(self.hist, other.hist)

    def copy(self) -> Stage:
        out = Stage()
        out.add(self)
        return out


class Bucket:
    """One stage in one wall-clock second.

    Its histogram is ``hist`` (a dict, where samples land) plus, once the second is over,
    ``packed``: the same counts sealed into two arrays (index as uint16, count as uint32,
    sorted by index), about a tenth of the dict's memory. A sample that arrives for a
    sealed second (a late worker report) simply lands in ``hist`` again; readers see both.
    """

    __slots__ = ("bytes", "count", "failures", "hist", "max_us", "packed")

    def __init__(self) -> None:
        self.count = 0
        self.failures = 0
        self.bytes = 0
        self.max_us = 0
        self.hist: hdr.Sparse = {}
        self.packed: tuple[array.array[int], array.array[int]] | None = None

    def items(self) -> Iterator[tuple[int, int]]:
        """(index, count) pairs; an index may appear twice (packed, then live)."""
        if self.packed is not None:
            yield from zip(self.packed[0], self.packed[1], strict=True)
        yield from self.hist.items()

    def histogram(self) -> hdr.Sparse:
        if self.packed is None:
            return self.hist
        merged: hdr.Sparse = {}
        for index, count in self.items():
            merged[index] = merged.get(index, 0) + count
        return merged

    def percentiles(self, wanted: Sequence[float]) -> list[int]:
        """Exact percentiles (µs, capped at the largest sample) of this second."""
        if self.packed is not None and not self.hist:
            indices, counts = self.packed
            return hdr.sorted_percentiles(indices, counts, self.count, wanted, cap=self.max_us)
        return hdr.percentiles(self.histogram(), self.count, wanted, cap=self.max_us)

    def seal(self) -> None:
        if not self.hist:
            return
        merged = self.histogram()
        indices = sorted(merged)
        self.packed = (array.array("H", indices), array.array("I", [merged[i] for i in indices]))
        self.hist = {}

    def add(self, other: Bucket) -> None:
        self.count += other.count
        self.failures += other.failures
        self.bytes += other.bytes
        self.max_us = max(self.max_us, other.max_us)
        hist = self.hist
        for index, count in other.items():
            hist[index] = hist.get(index, 0) + count

    def add_counts(self, other: Bucket) -> None:
        """``add`` without the histogram: for readers that want no percentiles of it."""
        self.count += other.count
        self.failures += other.failures
        self.bytes += other.bytes
        self.max_us = max(self.max_us, other.max_us)

    def copy(self) -> Bucket:
        out = Bucket()
        out.add(self)
        return out


class Layer:
    """Everything recorded (or merged) in some span; layers add exactly."""

    __slots__ = (
        "clamped",
        "dropped",
        "errors",
        "lag_max_us",
        "lag_sum_us",
        "late",
        "lost_deltas",
        "open_seconds",
        "scheduled",
        "sealed_below",
        "stages",
        "timeline",
    )

    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}
        self.timeline: dict[int, dict[str, Bucket]] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.scheduled = 0
        self.late = 0
        self.dropped = 0
        self.lag_sum_us = 0
        self.lag_max_us = 0
        self.open_seconds: dict[int, list[int]] = {}  # second -> [late, dropped]
        self.clamped = 0
        self.lost_deltas = 0
        self.sealed_below = 0  # every second below this one has been sealed once

    def seal_before(self, second: int) -> None:
        """Pack the histograms of the seconds before ``second`` (see :class:`Bucket`)."""
        start = self.sealed_below
        if second <= start:
            return
        if second - start <= 4096:
            seconds = [s for s in range(start, second) if s in self.timeline]
        else:
            seconds = [s for s in self.timeline if start <= s < second]
        for s in seconds:
            for bucket in self.timeline[s].values():
                bucket.seal()
        self.sealed_below = second

    def is_empty(self) -> bool:
        return not (
            self.stages
            or self.timeline
            or self.errors
            or self.scheduled
            or self.late
            or self.dropped
            or self.open_seconds
            or self.clamped
            or self.lost_deltas
        )

    def absorb(self, other: Layer, *, steal: bool = False) -> None:
        """Add ``other`` into this layer; with ``steal`` its objects are reused (``other`` is
        discarded by the caller), otherwise copied. Errors are added as they are: callers
        that bound distinct messages admit keys before they call this."""
        for name, stage in other.stages.items():
            mine = self.stages.get(name)
            if mine is None:
                self.stages[name] = stage if steal else stage.copy()
            else:
                mine.add(stage)
        for second, row in other.timeline.items():
            my_row = self.timeline.get(second)
            if my_row is None:
                my_row = self.timeline[second] = {}
            for name, bucket in row.items():
                mine_b = my_row.get(name)
                if mine_b is None:
                    mine_b = my_row[name] = bucket if steal else bucket.copy()
                else:
                    mine_b.add(bucket)
                if second < self.sealed_below:  # late: this second is sealed already
                    mine_b.seal()
        for key, count in other.errors.items():
            self.errors[key] = self.errors.get(key, 0) + count
        self.scheduled += other.scheduled
        self.late += other.late
        self.dropped += other.dropped
        self.lag_sum_us += other.lag_sum_us
        self.lag_max_us = max(self.lag_max_us, other.lag_max_us)
        for second, (late, dropped) in other.open_seconds.items():
            counts = self.open_seconds.setdefault(second, [0, 0])
            counts[0] += late
            counts[1] += dropped
        self.clamped += other.clamped
        self.lost_deltas += other.lost_deltas

    def copy(self) -> Layer:
        out = Layer()
        out.absorb(self)
        return out


# --- wire form ------------------------------------------------------------------------------


def encode_layer(layer: Layer, *, kind: str, seq: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kind": kind,
        "seq": seq,
        "histogram": {
            "unit": "us",
            "lowest": hdr.LOWEST_US,
            "highest": hdr.HIGHEST_US,
            "significant_digits": hdr.SIGNIFICANT_DIGITS,
        },
        "stages": {
            name: {
                "count": s.count,
                "failures": s.failures,
                "bytes": s.bytes,
                "sum_us": s.sum_us,
                "min_us": s.min_us if s.count else 0,
                "max_us": s.max_us,
                "hist": hdr.encode(s.hist),
            }
            for name, s in layer.stages.items()
        },
        "timeline": [
            [second, name, b.count, b.failures, b.bytes, b.max_us, hdr.to_flat(b.histogram())]
            for second, row in sorted(layer.timeline.items())
            for name, b in row.items()
        ],
        "errors": [[stage, message, count] for (stage, message), count in layer.errors.items()],
        "open": {
            "scheduled": layer.scheduled,
            "late": layer.late,
            "dropped": layer.dropped,
            "lag_sum_us": layer.lag_sum_us,
            "lag_max_us": layer.lag_max_us,
            "seconds": [[sec, c[0], c[1]] for sec, c in sorted(layer.open_seconds.items())],
        },
        "clamped": layer.clamped,
        "lost_deltas": layer.lost_deltas,
    }


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StatsFormatError(f"{what} must be a non-negative integer, not {value!r}"[:200])
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise StatsFormatError(f"{what} must be a string")
    return value


def _map(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StatsFormatError(f"{what} must be an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise StatsFormatError(f"{what} must be a list")
    return list(value)


def _decode_stage(name: str, raw: object) -> Stage:
    data = _map(raw, f"stages[{name!r}]")
    stage = Stage()
    stage.count = _int(data.get("count"), f"stages[{name!r}].count")
    stage.failures = _int(data.get("failures"), f"stages[{name!r}].failures")
    stage.bytes = _int(data.get("bytes"), f"stages[{name!r}].bytes")
    stage.sum_us = _int(data.get("sum_us"), f"stages[{name!r}].sum_us")
    stage.max_us = _int(data.get("max_us"), f"stages[{name!r}].max_us")
    min_us = _int(data.get("min_us"), f"stages[{name!r}].min_us")
    stage.min_us = min_us if stage.count else _NO_MIN
    stage.hist = hdr.decode(_str(data.get("hist"), f"stages[{name!r}].hist"))
    if sum(stage.hist.values()) != stage.count or stage.failures > stage.count:
        raise StatsFormatError(f"stages[{name!r}]: counts and histogram disagree")
    return stage


def decode_layer(doc: Mapping[str, Any]) -> tuple[Layer, str, int]:
    """``(layer, kind, seq)`` from a document made by :func:`encode_layer`."""
    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, Mapping) else type(doc).__name__
        raise StatsFormatError(f"expected load statistics in format {FORMAT!r}, got {found!r}")
    kind = _str(doc.get("kind"), "kind")
    seq = _int(doc.get("seq", 0), "seq")
    layer = Layer()
    for name, raw in _map(doc.get("stages", {}), "stages").items():
        layer.stages[_str(name, "a stage name")] = _decode_stage(name, raw)
    for entry in _list(doc.get("timeline", []), "timeline"):
        row = _list(entry, "a timeline entry")
        if len(row) != 7:
            raise StatsFormatError(
                "a timeline entry is [second, stage, count, failures, bytes, max_us, hist]"
            )
        bucket = Bucket()
        second = _int(row[0], "timeline second")
        name = _str(row[1], "timeline stage")
        bucket.count = _int(row[2], "timeline count")
        bucket.failures = _int(row[3], "timeline failures")
        bucket.bytes = _int(row[4], "timeline bytes")
        bucket.max_us = _int(row[5], "timeline max_us")
        bucket.hist = hdr.from_flat(_list(row[6], "timeline histogram"))
        if sum(bucket.hist.values()) != bucket.count:
            raise StatsFormatError(f"timeline {second}/{name!r}: count and histogram disagree")
        existing = layer.timeline.setdefault(second, {}).get(name)
        if existing is None:
            layer.timeline[second][name] = bucket
        else:
            existing.add(bucket)
    for entry in _list(doc.get("errors", []), "errors"):
        row = _list(entry, "an errors entry")
        if len(row) != 3:
            raise StatsFormatError("an errors entry is [stage, message, count]")
        key = (_str(row[0], "error stage"), _str(row[1], "error message"))
        layer.errors[key] = layer.errors.get(key, 0) + _int(row[2], "error count")
    opened = _map(doc.get("open", {}), "open")
    layer.scheduled = _int(opened.get("scheduled", 0), "open.scheduled")
    layer.late = _int(opened.get("late", 0), "open.late")
    layer.dropped = _int(opened.get("dropped", 0), "open.dropped")
    layer.lag_sum_us = _int(opened.get("lag_sum_us", 0), "open.lag_sum_us")
    layer.lag_max_us = _int(opened.get("lag_max_us", 0), "open.lag_max_us")
    for entry in _list(opened.get("seconds", []), "open.seconds"):
        row = _list(entry, "an open.seconds entry")
        if len(row) != 3:
            raise StatsFormatError("an open.seconds entry is [second, late, dropped]")
        counts = layer.open_seconds.setdefault(_int(row[0], "open second"), [0, 0])
        counts[0] += _int(row[1], "open late")
        counts[1] += _int(row[2], "open dropped")
    layer.clamped = _int(doc.get("clamped", 0), "clamped")
    layer.lost_deltas = _int(doc.get("lost_deltas", 0), "lost_deltas")
    return layer, kind, seq

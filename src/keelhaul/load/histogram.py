"""Latency histograms: HdrHistogram's buckets, kept sparse.

Every latency is an integer number of microseconds, bucketed exactly as
``hdrh.histogram.HdrHistogram(1, 3_600_000_000, 3)`` buckets it (1 µs .. 1 h, three
significant digits: a bucket is never wider than 0.1 % of its values). A histogram here is a
plain ``dict`` from HdrHistogram's counts-array index to a count, because:

- recording is one index computation and one dict increment (the load generator's hot path);
- a per-second, per-stage histogram holds only the buckets its few hundred samples touched,
  where a dense HdrHistogram costs 188 KB however few samples it has;
- adding two histograms is adding counts per index, so merges are exact.

Percentiles are computed with HdrHistogram's own rule (:func:`percentiles` mirrors
``HdrHistogram.get_value_at_percentile``; the unit tests hold them equal), and histograms
cross process boundaries in HdrHistogram's standard compressed base64 encoding
(:func:`encode` / :func:`decode`), which any HdrHistogram implementation reads.
"""

from __future__ import annotations

import array
import math
from collections.abc import Iterable, Mapping, Sequence

from hdrh.histogram import HdrHistogram

from keelhaul.errors import StatsFormatError

__all__ = [
    "HIGHEST_US",
    "LOWEST_US",
    "SIGNIFICANT_DIGITS",
    "Sparse",
    "add_into",
    "clamp_us",
    "decode",
    "encode",
    "from_flat",
    "highest_equivalent",
    "index_of",
    "new_hdr",
    "percentiles",
    "sorted_percentiles",
    "to_flat",
    "to_hdr",
    "value_of",
]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3

# The bucket geometry, derived as HdrHistogram.__init__ derives it.
_UNIT_MAG = math.floor(math.log(LOWEST_US) / math.log(2))
_SUB_COUNT_MAG = math.ceil(math.log(2 * 10**SIGNIFICANT_DIGITS) / math.log(2))
_HALF_MAG = _SUB_COUNT_MAG - 1
_SUB_COUNT = 1 << (_HALF_MAG + 1)
_HALF = _SUB_COUNT // 2
_MASK = (_SUB_COUNT - 1) << _UNIT_MAG
_SHIFT = _UNIT_MAG + _HALF_MAG + 1

Sparse = dict[int, int]
"""HdrHistogram counts-array index -> count (only non-zero counts are present)."""


def clamp_us(latency_ms: float) -> int:
    """Milliseconds to whole microseconds, clamped into the histogram's range."""
    us = int(latency_ms * 1000.0 + 0.5)
    if us < 0:
        return 0
    return min(us, HIGHEST_US)


def index_of(us: int) -> int:
    """The counts-array index of ``us`` (0 <= us <= HIGHEST_US), as HdrHistogram computes it."""
    bucket = (us | _MASK).bit_length() - _SHIFT
    return ((bucket + 1) << _HALF_MAG) + (us >> (bucket + _UNIT_MAG)) - _HALF


def value_of(index: int) -> int:
    """The lowest value that falls into bucket ``index``."""
    bucket = (index >> _HALF_MAG) - 1
    sub = (index & (_HALF - 1)) + _HALF
    if bucket < 0:
        sub -= _HALF
        bucket = 0
    return sub << (bucket + _UNIT_MAG)


def highest_equivalent(value: int) -> int:
    """The highest value counted in the same bucket as ``value``."""
    bucket = (value | _MASK).bit_length() - _SHIFT
    sub = value >> (bucket + _UNIT_MAG)
    lowest = sub << (bucket + _UNIT_MAG)
    if sub >= _SUB_COUNT:
        bucket += 1
    return lowest + (1 << (_UNIT_MAG + bucket)) - 1


def add_into(dst: Sparse, src: Mapping[int, int]) -> None:
    for index, count in src.items():
        dst[index] = dst.get(index, 0) + count


def percentiles(
    hist: Mapping[int, int], total: int, wanted: Sequence[float], *, cap: int | None = None
) -> list[int]:
    """Values (µs) at each percentile in ``wanted`` (0..100), HdrHistogram's rule exactly:
    the highest value of the bucket that holds the percentile.

    ``total`` is the sum of the counts (callers keep it anyway). An empty histogram gives 0.
    ``cap`` (the exact largest sample, when the caller tracks it) bounds the result: the top
    bucket's highest value can exceed every sample in it, and a p99.9 above the max would
    look like a bug to anyone reading the table.
    """
    indices = sorted(hist)
    return sorted_percentiles(indices, [hist[i] for i in indices], total, wanted, cap=cap)


def sorted_percentiles(
    indices: Sequence[int],
    counts: Sequence[int],
    total: int,
    wanted: Sequence[float],
    *,
    cap: int | None = None,
) -> list[int]:
    """:func:`percentiles` of a histogram given as ascending ``indices`` with their counts."""
    if total <= 0 or not indices:
        return [0 for _ in wanted]
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    result = [0] * len(wanted)
    position = 0
    last = len(indices) - 1
    running = counts[0]
    for i in order:
        pct = wanted[i]
        # the same float expression as HdrHistogram.get_target_count_at_percentile
        target = max(int((min(pct, 100.0) * total / 100) + 0.5), 1)
        while running < target and position < last:
            position += 1
            running += counts[position]
        lowest = value_of(indices[position])
        value = highest_equivalent(lowest) if pct else lowest
        result[i] = value if cap is None or value <= cap else cap
    return result


def new_hdr() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def to_hdr(hist: Mapping[int, int]) -> HdrHistogram:
    """A real HdrHistogram with the same counts (for encoding, or for hdrh's own queries)."""
    out = new_hdr()
    for index, count in hist.items():
        out.record_value(value_of(index), count)
    return out


def encode(hist: Mapping[int, int]) -> str:
    """HdrHistogram's V2 compressed base64 encoding ("HISTF...")."""
    encoded: bytes = to_hdr(hist).encode()
    return encoded.decode("ascii")


def decode(text: str) -> Sparse:
    """The inverse of :func:`encode`; refuses a histogram with other bucket geometry."""
    try:
        decoded = HdrHistogram.decode(text.encode("ascii"))
    except Exception as exc:  # noqa: BLE001 - hdrh raises TypeError, zlib.error, its own
        raise StatsFormatError(f"not an HdrHistogram encoding ({type(exc).__name__})") from None
    geometry = (
        decoded.lowest_trackable_value,
        decoded.highest_trackable_value,
        decoded.significant_figures,
    )
    if geometry != (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS):
        raise StatsFormatError(
            f"histogram range/precision {geometry} differs from keelhaul's "
            f"{(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)}; cannot merge exactly"
        )
    raw = bytes(decoded.counts)
    counts = array.array("q")
    if len(raw) != decoded.counts_len * counts.itemsize:
        raise StatsFormatError("an HdrHistogram with counters other than 64-bit")
    counts.frombytes(raw)
    return {index: count for index, count in enumerate(counts) if count}


def to_flat(hist: Mapping[int, int]) -> list[int]:
    """``[index, count, index, count, ...]``: the compact wire form of a small histogram."""
    flat: list[int] = []
    for index, count in hist.items():
        flat.append(index)
        flat.append(count)
    return flat


def from_flat(flat: Iterable[int]) -> Sparse:
    items = list(flat)
    if len(items) % 2:
        raise StatsFormatError("a flat histogram needs index/count pairs")
    out: Sparse = {}
    for k in range(0, len(items), 2):
        index, count = int(items[k]), int(items[k + 1])
        if index < 0 or count < 0:
            raise StatsFormatError("a flat histogram has a negative index or count")
        if count:
            out[index] = out.get(index, 0) + count
    return out

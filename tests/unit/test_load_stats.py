"""RunStats: exact against HdrHistogram itself, and merges that equal one process's view."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from keelhaul.errors import StatsFormatError
from keelhaul.load import histogram as hdr
from keelhaul.load.stats import (
    AGGREGATED,
    OTHER_ERRORS,
    RunStats,
    StageSummary,
    order_stages,
)

pytestmark = pytest.mark.unit

T0 = 1_700_000_000
PCTS = (50.0, 90.0, 95.0, 99.0, 99.9)

# latencies in ms: sub-microsecond to over an hour, dense where registries live
latency = st.one_of(
    st.floats(min_value=0, max_value=5, allow_nan=False),
    st.floats(min_value=0, max_value=5_000, allow_nan=False),
    st.floats(min_value=0, max_value=4_000_000, allow_nan=False),
)
Sample = tuple[str, float, int, bool, int, int]  # stage, ms, bytes, failed, second, error id
sample = st.tuples(
    st.sampled_from(["token", "blob GET", "manifest GET", "image pull"]),
    latency,
    st.integers(min_value=0, max_value=10**7),
    st.booleans(),
    st.integers(min_value=0, max_value=30),  # long enough for seconds to be sealed
    st.integers(min_value=0, max_value=4),
)


def hdr_of(values_us: Sequence[int]):  # type: ignore[no-untyped-def]
    h = hdr.new_hdr()
    for v in values_us:
        h.record_value(v)
    return h


def feed(stats: RunStats, samples: Sequence[Sample]) -> None:
    for name, ms, length, failed, second, err in samples:
        stats.record(name, ms, length, failed, T0 + second + 0.25, f"error {err}")


def row(stats: RunStats, name: str, duration: float = 10.0) -> StageSummary:
    return next(r for r in stats.summary(duration) if r.name == name)


# --- the histogram geometry is HdrHistogram's ----------------------------------------------


@given(st.integers(min_value=0, max_value=hdr.HIGHEST_US))
@example(0)
@example(1)
@example(1023)
@example(1024)
@example(2047)
@example(2048)
@example(4095)
@example(4096)
@example(hdr.HIGHEST_US - 1)
@example(hdr.HIGHEST_US)
def test_bucket_index_and_values_match_hdrhistogram(value: int) -> None:
    h = hdr.new_hdr()
    index = hdr.index_of(value)
    assert index == h.get_counts_array_index(value)
    assert hdr.value_of(index) == h.get_value_from_index(index)
    assert hdr.value_of(index) == h.get_lowest_equivalent_value(value)
    assert hdr.highest_equivalent(value) == h.get_highest_equivalent_value(value)


@given(st.lists(st.integers(min_value=0, max_value=hdr.HIGHEST_US), min_size=1, max_size=300))
def test_sparse_percentiles_equal_hdrhistogram(values: list[int]) -> None:
    sparse: hdr.Sparse = {}
    for v in values:
        i = hdr.index_of(v)
        sparse[i] = sparse.get(i, 0) + 1
    h = hdr_of(values)
    wanted = [0.0, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0]
    assert hdr.percentiles(sparse, len(values), wanted) == [
        h.get_value_at_percentile(p) for p in wanted
    ]
    # and the sparse histogram's HdrHistogram form is the very same histogram
    assert hdr.to_hdr(sparse).encode() == h.encode()
    assert hdr.decode(hdr.encode(sparse)) == sparse


def test_empty_histogram_percentiles_are_zero() -> None:
    assert hdr.percentiles({}, 0, [50.0, 99.0]) == [0, 0]


def test_decode_refuses_another_geometry_and_garbage() -> None:
    from hdrh.histogram import HdrHistogram

    other = HdrHistogram(1, 60_000_000, 2)
    other.record_value(1000)
    with pytest.raises(StatsFormatError, match="differs"):
        hdr.decode(other.encode().decode())
    with pytest.raises(StatsFormatError, match="not an HdrHistogram"):
        hdr.decode("not base64 at all!")


# --- recording and summaries ---------------------------------------------------------------


@settings(max_examples=60)
@given(st.lists(sample, min_size=1, max_size=200))
def test_summary_is_exact(samples: list[Sample]) -> None:
    stats = RunStats(clock=lambda: T0)
    feed(stats, samples)
    rows = {r.name: r for r in stats.summary(10.0)}
    for name in {s[0] for s in samples} | {AGGREGATED}:
        mine = [s for s in samples if s[0] == name or (name == AGGREGATED and s[0] != "image pull")]
        r = rows[name]
        if not mine:
            assert r.count == 0
            assert r.p50_ms is None
            continue
        us = [hdr.clamp_us(s[1]) for s in mine]
        h = hdr_of(us)
        assert r.count == len(mine)
        assert r.failures == sum(1 for s in mine if s[3])
        assert r.bytes == sum(s[2] for s in mine)
        assert r.rps == len(mine) / 10.0
        assert r.bytes_per_s == r.bytes / 10.0
        assert r.max_ms == max(us) / 1000
        assert r.min_ms == min(us) / 1000
        assert r.mean_ms == pytest.approx(sum(us) / len(us) / 1000)
        # HdrHistogram's percentile of one histogram of all samples, capped at the exact max
        expected = [min(h.get_value_at_percentile(p), max(us)) / 1000 for p in PCTS]
        assert [r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.p999_ms] == expected


def test_percentiles_never_exceed_the_exact_max() -> None:
    stats = RunStats(clock=lambda: T0)
    for ms in (1.0, 2.0, 1299.9):
        stats.record("image pull", ms, 0, False)
    r = row(stats, "image pull")
    h = hdr_of([1000, 2000, 1_299_900])
    assert h.get_value_at_percentile(99.9) > 1_299_900  # the bucket's top...
    assert r.p999_ms == r.max_ms == 1299.9  # ...is capped at the largest sample


def test_latencies_over_an_hour_are_clamped_and_counted() -> None:
    stats = RunStats(clock=lambda: T0)
    stats.record("blob GET", 5_000_000_000.0, 0, False)
    stats.record("blob GET", -3.0, 0, False)  # a clock that went backwards
    stats.record("blob GET", float("nan"), 0, False)  # a broken timer does not raise
    stats.record("blob GET", float("inf"), 0, False)
    r = row(stats, "blob GET")
    assert r.count == 4
    assert r.max_ms == hdr.HIGHEST_US / 1000
    assert r.min_ms == 0
    assert stats.clamped == 3


def test_aggregated_leaves_out_whole_image_entries() -> None:
    stats = RunStats(clock=lambda: T0)
    stats.record("blob GET", 10, 100, False)
    stats.record("manifest GET", 20, 10, True, error="boom")
    stats.record("image pull", 30, 110, False)
    agg = row(stats, AGGREGATED)
    assert (agg.count, agg.failures, agg.bytes) == (2, 1, 110)
    assert agg.max_ms == 20
    assert [r.name for r in stats.summary(1)] == [
        "manifest GET",
        "blob GET",
        "image pull",
        AGGREGATED,
    ]
    everything = RunStats(clock=lambda: T0, composite=())
    everything.merge(stats.snapshot())
    assert row(everything, AGGREGATED).count == 3


def test_stage_order() -> None:
    names = ["zeta", "image push", "blob GET", "token", "alpha", "image pull", "ping"]
    assert order_stages(names) == [
        "ping",
        "token",
        "blob GET",
        "alpha",
        "zeta",
        "image pull",
        "image push",
    ]


def test_zero_duration_gives_zero_rates() -> None:
    stats = RunStats(clock=lambda: T0)
    stats.record("token", 1, 10, False)
    r = row(stats, "token", duration=0)
    assert (r.rps, r.bytes_per_s) == (0.0, 0.0)


def test_an_empty_run_has_an_empty_aggregated_row() -> None:
    [agg] = RunStats().summary(5)
    assert agg.name == AGGREGATED
    assert (agg.count, agg.fail_ratio, agg.p99_ms, agg.max_ms) == (0, 0.0, None, None)


# --- errors --------------------------------------------------------------------------------


def test_distinct_error_messages_are_bounded() -> None:
    stats = RunStats(clock=lambda: T0, max_errors=3)
    for i in range(10):
        stats.record("blob GET", 1, 0, True, error=f"message {i % 5}")
    stats.record("token", 1, 0, True, error=None)
    stats.record("token", 1, 0, False, error="ignored: not a failure")
    errors = {(e.stage, e.message): e.count for e in stats.errors()}
    assert errors == {
        ("blob GET", "message 0"): 2,
        ("blob GET", "message 1"): 2,
        ("blob GET", "message 2"): 2,
        ("blob GET", OTHER_ERRORS): 4,
        ("token", OTHER_ERRORS): 1,
    }
    assert sum(errors.values()) == sum(r.failures for r in stats.summary(1)[:-1])
    assert stats.errors()[0].count == 4  # most frequent first


def test_long_error_messages_are_truncated() -> None:
    stats = RunStats(clock=lambda: T0)
    stats.record("token", 1, 0, True, error="x" * 10_000)
    [error] = stats.errors()
    assert len(error.message) == 300


def test_merged_errors_respect_the_bound() -> None:
    workers = [RunStats(clock=lambda: T0, max_errors=100) for _ in range(2)]
    for w, stats in enumerate(workers):
        for i in range(3):
            stats.record("token", 1, 0, True, error=f"w{w} e{i}")
    master = RunStats(max_errors=4)
    for stats in workers:
        master.merge(stats.take_delta(), source=str(id(stats)))
    errors = {e.message: e.count for e in master.errors()}
    assert len(errors) == 5  # four named, the rest under "other"
    assert errors[OTHER_ERRORS] == 2
    assert sum(errors.values()) == 6


# --- the timeline --------------------------------------------------------------------------


def test_timeline_buckets_by_second_with_exact_percentiles() -> None:
    rnd = random.Random(3)
    clock_now = [T0 + 0.0]
    stats = RunStats(clock=lambda: clock_now[0])
    per_second: dict[int, list[int]] = {}
    for i in range(2000):
        clock_now[0] = T0 + i / 400  # five seconds
        ms = rnd.lognormvariate(2, 1)
        stats.record("blob GET", ms, 10, i % 97 == 0)
        per_second.setdefault(int(clock_now[0]), []).append(hdr.clamp_us(ms))
    points = [p for p in stats.timeline() if p.stage == "blob GET"]
    assert [p.t for p in points] == sorted(per_second)
    for p in points:
        us = per_second[p.t]
        h = hdr_of(us)
        assert p.count == len(us)
        assert p.bytes == 10 * len(us)
        assert [p.p50_ms, p.p95_ms, p.p99_ms] == [
            min(h.get_value_at_percentile(q), max(us)) / 1000 for q in (50, 95, 99)
        ]
    # windows of several seconds are exact too
    [window] = [p for p in stats.timeline(step_s=10) if p.stage == "blob GET"]
    all_us = [v for vs in per_second.values() for v in vs]
    assert window.count == 2000
    assert window.p99_ms == min(hdr_of(all_us).get_value_at_percentile(99), max(all_us)) / 1000
    assert stats.span() == (T0, T0 + 4)


def test_past_seconds_are_packed_and_stay_exact() -> None:
    rnd = random.Random(5)
    stats = RunStats(clock=lambda: T0)
    samples: dict[int, list[int]] = {}
    for sec in range(30):
        for _ in range(200):
            ms = rnd.lognormvariate(3, 1)
            stats.record("blob GET", ms, 1, False, T0 + sec)
            samples.setdefault(T0 + sec, []).append(hdr.clamp_us(ms))
    layer = stats._pending  # white box: the old seconds are packed, the recent ones live
    assert layer.timeline[T0]["blob GET"].packed is not None
    assert layer.timeline[T0]["blob GET"].hist == {}
    assert layer.timeline[T0 + 29]["blob GET"].packed is None
    # a late sample for a packed second lands next to the packed counts
    stats.record("blob GET", 7.0, 1, False, T0 + 2)
    samples[T0 + 2].append(7000)
    master = RunStats()
    master.merge(stats.take_delta(), source="w")
    for source in (stats, master):
        points = {p.t: p for p in source.timeline() if p.stage == "blob GET"}
        for t, us in samples.items():
            h = hdr_of(us)
            assert points[t].count == len(us)
            assert points[t].p99_ms == min(h.get_value_at_percentile(99), max(us)) / 1000
    assert master.snapshot()["timeline"] == stats.snapshot()["timeline"]


def test_when_places_a_sample_in_its_intended_second() -> None:
    stats = RunStats(clock=lambda: T0 + 50)
    stats.record("image pull", 1500, 0, False, when=T0 + 7.9)
    stats.record("image pull", 10, 0, False)
    assert [(p.t, p.stage) for p in stats.timeline()] == [
        (T0 + 7, "image pull"),
        (T0 + 50, "image pull"),
    ]


def test_timeline_aggregated_series_skips_whole_image_entries() -> None:
    stats = RunStats(clock=lambda: T0)
    stats.record("blob GET", 1, 0, False)
    stats.record("image pull", 1, 0, False)
    assert [(p.stage, p.count) for p in stats.timeline()] == [
        (AGGREGATED, 1),
        ("blob GET", 1),
        ("image pull", 1),
    ]


# --- the open model ------------------------------------------------------------------------


def test_open_model_counters() -> None:
    stats = RunStats(clock=lambda: T0)
    stats.scheduled(10)
    stats.late(12.5, when=T0 + 1)
    stats.late(40.0, when=T0 + 1)
    stats.dropped(T0 + 2, n=3)
    stats.dropped()
    it = stats.iterations()
    assert (it.scheduled, it.late, it.dropped) == (10, 2, 4)
    assert it.max_lag_ms == 40.0
    assert it.mean_lag_ms == pytest.approx(26.25)
    assert it.per_second == ((T0, 0, 1), (T0 + 1, 2, 0), (T0 + 2, 0, 3))
    master = RunStats()
    master.merge(stats.take_delta(), source="w")
    master.merge(stats.snapshot())
    assert master.iterations().late == 4
    assert master.iterations().max_lag_ms == 40.0


# --- shipping: deltas, snapshots, merges ---------------------------------------------------


def test_take_delta_twice_returns_nothing_new() -> None:
    stats = RunStats(clock=lambda: T0)
    stats.record("token", 3, 100, False)
    first = stats.take_delta()
    second = stats.take_delta()
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["stages"]["token"]["count"] == 1
    assert second["stages"] == {}
    assert second["timeline"] == []
    assert second["errors"] == []
    assert second["open"]["scheduled"] == second["open"]["late"] == 0
    # what was shipped is still part of this process's own view
    assert row(stats, "token").count == 1
    stats.record("token", 3, 100, False)
    assert stats.take_delta()["stages"]["token"]["count"] == 1
    assert row(stats, "token").count == 2


@settings(max_examples=50, deadline=None)
@given(
    st.lists(sample, max_size=150),
    st.lists(st.integers(min_value=0, max_value=2), max_size=150),
    st.sets(st.integers(min_value=0, max_value=150), max_size=8),
)
def test_merged_deltas_equal_one_process(
    samples: list[Sample], owner: list[int], cuts: set[int]
) -> None:
    """Samples split over three workers, shipped at arbitrary moments, merged on a master:
    the same numbers as one RunStats fed everything."""
    single = RunStats(clock=lambda: T0)
    feed(single, samples)
    workers = [RunStats(clock=lambda: T0) for _ in range(3)]
    master = RunStats(clock=lambda: T0)
    for i, s in enumerate(samples):
        feed(workers[owner[i] if i < len(owner) else 0], [s])
        if i in cuts:
            for w, stats in enumerate(workers):
                master.merge(stats.take_delta(), source=f"w{w}")
    for w, stats in enumerate(workers):
        master.merge(stats.take_delta(), source=f"w{w}")
    assert master.summary(7.0) == single.summary(7.0)
    assert master.timeline() == single.timeline()
    assert sorted(master.errors(), key=repr) == sorted(single.errors(), key=repr)
    for name in [*single.stage_names(), AGGREGATED]:
        assert hdr.decode(master.histogram(name)) == hdr.decode(single.histogram(name))
    assert master.count == sum(w.count for w in workers) == len(samples)
    assert master.lost_deltas == master.duplicate_deltas == 0


def test_snapshot_round_trip() -> None:
    stats = RunStats(clock=lambda: T0)
    feed(stats, [("token", 2.5, 10, False, 0, 0), ("blob GET", 80.0, 10**6, True, 1, 2)])
    stats.late(5.0)
    copy = RunStats.from_snapshot(stats.snapshot())
    assert copy.summary(3) == stats.summary(3)
    assert copy.timeline() == stats.timeline()
    assert copy.errors() == stats.errors()
    assert copy.iterations() == stats.iterations()
    assert copy.snapshot() == stats.snapshot()


def test_a_delta_merged_twice_counts_once() -> None:
    worker = RunStats(clock=lambda: T0)
    worker.record("token", 1, 1, False)
    delta = worker.take_delta()
    master = RunStats()
    assert master.merge(delta, source="w1") is True
    assert master.merge(delta, source="w1") is False
    assert master.merge(delta, source="w2") is True  # another worker's numbering
    assert row(master, "token").count == 2
    assert master.duplicate_deltas == 1


def test_a_gap_in_a_workers_deltas_is_counted_as_lost() -> None:
    worker = RunStats(clock=lambda: T0)
    master = RunStats()
    worker.record("token", 1, 1, False)
    master.merge(worker.take_delta(), source="w")
    worker.record("token", 1, 1, False)
    worker.take_delta()  # never arrives
    worker.record("token", 1, 1, False)
    master.merge(worker.take_delta(), source="w")
    assert master.lost_deltas == 1
    assert row(master, "token").count == 2


def test_restore_puts_an_unsent_delta_back() -> None:
    worker = RunStats(clock=lambda: T0)
    master = RunStats()
    worker.record("token", 1, 1, False)
    worker.restore(worker.take_delta())
    worker.record("token", 2, 1, False)
    delta = worker.take_delta()
    assert delta["seq"] == 1
    master.merge(delta, source="w")
    assert row(master, "token").count == 2
    assert master.lost_deltas == 0
    with pytest.raises(ValueError, match="take_delta"):
        worker.restore(worker.snapshot())


def test_reset_forgets_samples_but_keeps_numbering() -> None:
    worker = RunStats(clock=lambda: T0)
    worker.record("token", 1, 1, False)
    worker.take_delta()
    worker.record("token", 1, 1, True, error="x")
    worker.reset()
    assert worker.summary(1)[-1].count == 0
    assert worker.errors() == []
    assert worker.take_delta()["seq"] == 2


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="something/else"), "expected load statistics"),
        (lambda d: d["stages"]["token"].update(count=-1), "non-negative"),
        (lambda d: d["stages"]["token"].update(count=2), "disagree"),
        (lambda d: d["stages"]["token"].update(hist="@@@"), "not an HdrHistogram"),
        (lambda d: d["timeline"][0].pop(), "timeline entry"),
        (lambda d: d["timeline"][0].__setitem__(2, 5), "disagree"),
        (lambda d: d["timeline"][0].__setitem__(6, [1]), "pairs"),
        (lambda d: d["errors"].append(["token", 3, 1]), "string"),
        (lambda d: d["open"].update(late="many"), "non-negative"),
        (lambda d: d.update(stages=[]), "object"),
    ],
)
def test_a_malformed_document_is_refused_whole(mutate, message) -> None:  # type: ignore[no-untyped-def]
    worker = RunStats(clock=lambda: T0)
    worker.record("token", 1, 1, False)
    master = RunStats()
    master.record("blob GET", 1, 1, False)
    before = master.snapshot()
    doc = worker.take_delta()
    mutate(doc)
    with pytest.raises(StatsFormatError, match=message):
        master.merge(doc, source="w")
    assert master.snapshot() == before

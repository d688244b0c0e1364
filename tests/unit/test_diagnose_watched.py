"""A diagnosis that began watching after the run began says so (``load --diagnose`` with a
load generator so starved of CPU that the agent it starts samples late)."""

from __future__ import annotations

import pytest

from keelhaul.diagnose.analysis import LATE_S, Watched, analyse, watched_caveat
from keelhaul.diagnose.loadreport import ClientRun
from keelhaul.diagnose.model import Collection
from support.diagnose_synth import Synth, token_second

pytestmark = pytest.mark.unit

SECONDS = 20


def bcrypt_run() -> Collection:
    """Twenty seconds of a token service CPU-bound in bcrypt (a strong verdict)."""
    s = Synth()
    for _ in range(SECONDS):
        token_second(
            s, rps=3, app=2.48, upstream=3.1, authn=2.47, cache="off",
            inflight=6.0, capacity=4000.0, workers=4.0, queue=0.0,
            tiers={"auth": (0.51, 2.46), "nginx": (0.01, 0.0), "generator": (0.0, 0.0)},
            host=2.0,
        )  # fmt: skip
    return s.collection()


def late_by(collection: Collection, seconds: float) -> Collection:
    """The same samples, the first ``seconds`` of them never taken."""
    first = collection.ticks[0].t
    return Collection(tuple(t for t in collection.ticks if t.t >= first + seconds), collection.meta)


def client_over(collection: Collection) -> ClientRun:
    return ClientRun((), collection.ticks[0].t, collection.ticks[-1].t)


def test_an_agent_that_sampled_from_the_start_adds_no_caveat() -> None:
    collection = bcrypt_run()
    report = analyse(collection, client=client_over(collection))
    assert not any("watched" in c for c in report.verdict.caveats)
    assert report.verdict.confidence == "high"


def test_an_agent_that_began_late_says_how_much_it_watched() -> None:
    collection = bcrypt_run()
    client = client_over(collection)
    report = analyse(late_by(collection, 12), client=client)
    caveat = report.verdict.caveats[0]
    assert caveat.startswith("the diagnosis watched the stack only 8 of the run's 20 s")
    assert "first sample came 12 s after the run began" in caveat
    assert report.verdict.tier == "token_cpu"  # what it saw still counts
    assert report.verdict.confidence == "low"  # but less than half the run was seen


def test_a_little_late_lowers_the_confidence_one_step() -> None:
    collection = bcrypt_run()
    report = analyse(late_by(collection, 3), client=client_over(collection))
    assert "only 17 of the run's 20 s" in report.verdict.caveats[0]
    assert report.verdict.confidence == "medium"


def test_through_prometheus_the_watched_span_is_the_generators() -> None:
    collection = bcrypt_run()
    start, end = collection.ticks[0].t, collection.ticks[-1].t
    watched = Watched(start + 9, end + 1, "the load generator")
    report = analyse(collection, client=client_over(collection), watched=watched)
    assert report.verdict.caveats[0].startswith(
        "the diagnosis watched the load generator only 11 of the run's 20 s"
    )


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (0.0, 60.0, None),
        (LATE_S, 60.0, None),  # at the threshold: a normal start
        (-5.0, 61.0, None),  # started before the run, as it should
        (LATE_S + 1, 60.0, 0.95),
        (30.0, 60.0, 0.5),
        (0.0, 45.0, 0.75),  # ended early
        (70.0, 80.0, 0.0),  # began after the run was over
    ],
)
def test_the_share_watched(first: float, last: float, expected: float | None) -> None:
    found = watched_caveat(0.0, 60.0, Watched(first, last))
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert found[1] == pytest.approx(expected)

"""The open model: shares of rate and iterations, the schedule, lateness, dropping; the
pacer itself driven by gevent (no sockets, no monkey-patching)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keelhaul.load.openmodel import (
    Pacer,
    Schedule,
    Ticket,
    TicketQueue,
    classify,
    split_count,
    split_rate,
)
from keelhaul.load.plan import RunPlan, SeedImage, push_tag

pytestmark = pytest.mark.unit


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=64))
def test_iteration_shares_add_up_and_differ_by_one_at_most(total: int, n: int) -> None:
    parts = [split_count(total, n, i) for i in range(n)]
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1


def test_rate_shares_interleave_the_starts() -> None:
    rate = 40.0
    shares = [split_rate(rate, 4, i) for i in range(4)]
    assert all(r == 10.0 for r, _ in shares)
    starts = sorted(
        Schedule(0.0, r, offset, limit=10).intended(i) for r, offset in shares for i in range(10)
    )
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(starts)}
    assert gaps == {1 / rate}  # merged: exactly one start every 25 ms


@pytest.mark.parametrize("bad", [(10, 0, 0), (10, 2, 2), (10, 2, -1)])
def test_no_share_for_a_process_that_does_not_exist(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        split_count(*bad)


def test_schedule() -> None:
    s = Schedule(t0=100.0, rate=10.0, offset_s=0.05, limit=5)
    assert [s.intended(i) for i in range(3)] == pytest.approx([100.05, 100.15, 100.25])
    assert s.due(100.0) == 0
    assert s.due(100.05) == 1
    assert s.due(100.2) == 2
    assert s.due(1000.0) == 5  # capped at the limit
    assert s.exhausted(5)
    assert not Schedule(0.0, 1.0).exhausted(10**9)


@pytest.mark.parametrize(
    ("lag", "verdict"),
    [(0.0, "on_time"), (0.01, "on_time"), (0.0101, "late"), (1.0, "late"), (1.01, "dropped")],
)
def test_classify(lag: float, verdict: str) -> None:
    assert classify(lag, late_after_s=0.01, drop_after_s=1.0) == verdict


def test_ticket_queue_drops_what_waited_too_long() -> None:
    q = TicketQueue(drop_after_s=1.0)
    for t in (0.0, 0.5, 1.0, 1.5):
        q.put(Ticket(t))
    ticket, dropped = q.take(now=1.6)
    assert [d.intended for d in dropped] == [0.0, 0.5]
    assert ticket == Ticket(1.0)
    assert len(q) == 1
    assert q.expire(now=10.0) == [Ticket(1.5)]
    assert q.take(now=10.0) == (None, [])


class Counts:
    def __init__(self) -> None:
        self.scheduled = 0
        self.late: list[float] = []
        self.dropped: list[float] = []
        self.done = 0

    def pacer(self, **kwargs: float | int | None) -> Pacer:
        defaults: dict[str, float | int | None] = {
            "rate": 200.0,
            "offset_s": 0.0,
            "limit": 40,
            "late_after_s": 0.05,
            "drop_after_s": 0.2,
        }
        defaults.update(kwargs)
        return Pacer(
            **defaults,  # type: ignore[arg-type]
            on_scheduled=self.on_scheduled,
            on_late=lambda lag, when: self.late.append(lag),
            on_dropped=self.dropped.append,
            on_done=self.on_done,
        )

    def on_scheduled(self) -> None:
        self.scheduled += 1

    def on_done(self) -> None:
        self.done += 1


def test_pacer_hands_out_every_ticket_to_free_users() -> None:
    import gevent

    counts = Counts()
    pacer = counts.pacer()
    taken: list[float] = []

    def user() -> None:
        while (ticket := pacer.take(lambda: False)) is not None:
            taken.append(ticket.intended)
            gevent.sleep(0.001)

    users = [gevent.spawn(user) for _ in range(4)]
    pacer.start()
    gevent.joinall(users, timeout=5)
    assert all(u.dead for u in users)
    assert counts.scheduled == 40
    assert len(taken) == 40
    assert taken == sorted(taken)  # oldest first
    assert counts.dropped == []
    assert counts.done == 1
    intervals = {round(b - a, 6) for a, b in itertools.pairwise(taken)}
    assert intervals == {0.005}  # intended starts are the schedule, not when they ran


def test_pacer_counts_late_and_dropped_when_users_are_too_few() -> None:
    import gevent

    counts = Counts()
    pacer = counts.pacer(limit=30, late_after_s=0.01, drop_after_s=0.05)
    ran = 0

    def slow_user() -> None:
        nonlocal ran
        while pacer.take(lambda: False) is not None:
            ran += 1
            gevent.sleep(0.04)  # 25 flows/s at most, against 200 arrivals/s

    user = gevent.spawn(slow_user)
    pacer.start()
    user.join(timeout=5)
    assert user.dead
    assert counts.scheduled == 30
    assert ran + len(counts.dropped) == 30  # every scheduled start ran or was dropped
    assert len(counts.dropped) > 10
    assert counts.late  # those that ran after waiting
    assert all(lag > 10 for lag in counts.late)  # milliseconds


def test_pacer_stop_releases_waiting_users() -> None:
    import gevent

    counts = Counts()
    pacer = counts.pacer(rate=1.0, limit=None, offset_s=10.0)  # nothing due for 10 s
    user = gevent.spawn(pacer.take, lambda: False)
    pacer.start()
    gevent.sleep(0.05)
    pacer.stop()
    user.join(timeout=2)
    assert user.dead
    assert user.value is None


def _plan(**kw: object) -> RunPlan:
    base: dict[str, object] = {
        "run_id": "20260101-000000-abcd",
        "registry": "127.0.0.1:5000",
        "plain_http": True,
        "embedded": True,
        "repo": "keelhaul/load",
        "images": [SeedImage(tag="2x1-s0", digest="sha256:" + "a" * 64, bytes=10)],
        "push_repo": "keelhaul/load/runs/x",
        "push_unique": True,
        "layers": 2,
        "layer_size": 1,
        "seed": 0,
        "mix": [("pull", 1.0)],
        "total_iterations": 10,
        "total_rate": 30.0,
    }
    base.update(kw)
    return RunPlan.model_validate(base)


def test_plan_shares_travel_as_json() -> None:
    plan = _plan()
    shares = [RunPlan.from_wire(plan.for_process(i, 3).to_wire()).share for i in range(3)]
    assert [s.iterations for s in shares] == [4, 3, 3]
    assert [s.rate for s in shares] == [10.0, 10.0, 10.0]
    assert [s.offset_s for s in shares] == pytest.approx([0.0, 1 / 30, 2 / 30])
    assert plan.base_url == "http://127.0.0.1:5000"


def test_a_plan_from_another_version_is_refused_clearly() -> None:
    from keelhaul.errors import LoadError

    wire = _plan().to_wire()
    wire["surprise"] = 1
    with pytest.raises(LoadError, match="same keelhaul version"):
        RunPlan.from_wire(wire)


def test_push_tags_unique_or_bounded() -> None:
    unique = _plan(push_unique=True)
    assert len({push_tag(unique, p, n) for p in range(3) for n in range(100)}) == 300
    bounded = _plan(push_unique=False, push_tags=5)
    assert len({push_tag(bounded, p, n) for p in range(3) for n in range(100)}) == 5

"""The open model (``--rate N/s``): iterations start on a schedule, whatever the latency.

A closed model (N users, each starting its next flow when the last one ends) slows down
with the system it measures: when the registry stalls, fewer requests are sent, and the
stall hides in a few slow samples (*coordinated omission*). Here, as in wrk2 and k6's
arrival-rate executors, iteration ``i`` of a process is *intended* to start at
``t0 + offset + i / rate``. A pacer hands each intended start to a free user as a *ticket*;
the user measures its whole flow **from the intended start**, so time spent waiting for a
free user counts as latency, exactly as a real client arriving then would have felt it.

* A ticket taken more than ``late_after`` after its intended start is counted **late**
  (with its lag).
* A ticket no user could take within ``drop_after`` of its intended start is **dropped**:
  counted, never run (a client that gave up); the queue of waiting tickets is therefore
  bounded by ``rate x drop_after``.

With several processes, each runs ``rate / processes`` with its first start offset by
``index / rate``, so the merged arrivals are evenly interleaved (exactly on one host, up to
clock skew across hosts).

Everything but :class:`Pacer` is pure scheduling math; the pacer is a thin gevent loop
(gevent imported when it starts).
"""

from __future__ import annotations

import collections
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Pacer",
    "Schedule",
    "Ticket",
    "TicketQueue",
    "classify",
    "split_count",
    "split_rate",
]

Verdict = Literal["on_time", "late", "dropped"]


def split_count(total: int, processes: int, index: int) -> int:
    """Process ``index``'s part of ``total`` iterations: the parts differ by at most one
    and add up to ``total``."""
    if processes < 1 or not 0 <= index < processes:
        raise ValueError(f"process {index} of {processes} does not exist")
    base, extra = divmod(total, processes)
    return base + (1 if index < extra else 0)


def split_rate(total: float, processes: int, index: int) -> tuple[float, float]:
    """``(rate, offset_s)`` of process ``index``: an equal part of the rate, and a phase
    that interleaves the processes' starts evenly."""
    if processes < 1 or not 0 <= index < processes:
        raise ValueError(f"process {index} of {processes} does not exist")
    if not total > 0:
        raise ValueError("the rate must be more than 0")
    return total / processes, index / total


def classify(lag_s: float, late_after_s: float, drop_after_s: float) -> Verdict:
    """How a ticket taken ``lag_s`` after its intended start counts."""
    if lag_s > drop_after_s:
        return "dropped"
    if lag_s > late_after_s:
        return "late"
    return "on_time"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Intended starts ``t0 + offset + i / rate`` for ``i < limit`` (no limit: ``None``)."""

    t0: float
    rate: float
    offset_s: float = 0.0
    limit: int | None = None

    def intended(self, i: int) -> float:
        return self.t0 + self.offset_s + i / self.rate

    def due(self, now: float) -> int:
        """How many starts are due by ``now`` (capped at ``limit``)."""
        if now < self.t0 + self.offset_s:
            return 0
        n = math.floor((now - self.t0 - self.offset_s) * self.rate + 1e-9) + 1
        return n if self.limit is None else min(n, self.limit)

    def exhausted(self, issued: int) -> bool:
        return self.limit is not None and issued >= self.limit


@dataclass(frozen=True, slots=True)
class Ticket:
    """An intended start, on the monotonic clock."""

    intended: float


class TicketQueue:
    """Tickets waiting for a free user, oldest first; too-old ones leave as dropped."""

    __slots__ = ("_queue", "drop_after_s")

    def __init__(self, drop_after_s: float) -> None:
        self.drop_after_s = drop_after_s
        self._queue: collections.deque[Ticket] = collections.deque()

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, ticket: Ticket) -> None:
        self._queue.append(ticket)

    def expire(self, now: float) -> list[Ticket]:
        """Remove and return the tickets nobody took within ``drop_after`` of their start."""
        expired: list[Ticket] = []
        queue = self._queue
        while queue and now - queue[0].intended > self.drop_after_s:
            expired.append(queue.popleft())
        return expired

    def take(self, now: float) -> tuple[Ticket | None, list[Ticket]]:
        """The oldest ticket still in time (or ``None``), and those dropped on the way."""
        expired = self.expire(now)
        return (self._queue.popleft() if self._queue else None), expired


class Pacer:
    """One process's arrival schedule, as a greenlet, and the users' side of it.

    ``on_scheduled()``, ``on_late(lag_ms, when)`` and ``on_dropped(when)`` report to the
    statistics (``when``: the intended start in epoch seconds). :meth:`take` blocks a user
    until a ticket is due (one waiting user is woken per ticket); it returns ``None`` once
    the schedule is exhausted or the pacer stopped.
    """

    def __init__(
        self,
        *,
        rate: float,
        offset_s: float,
        limit: int | None,
        late_after_s: float,
        drop_after_s: float,
        on_scheduled: Callable[[], None],
        on_late: Callable[[float, float], None],
        on_dropped: Callable[[float], None],
        on_done: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.rate = rate
        self.offset_s = offset_s
        self.limit = limit
        self.late_after_s = late_after_s
        self.queue = TicketQueue(drop_after_s)
        self._on_scheduled = on_scheduled
        self._on_late = on_late
        self._on_dropped = on_dropped
        self._on_done = on_done
        self._clock = clock
        self._wall = wall
        self._epoch_offset = 0.0
        self.issued = 0
        self.stopped = False
        self.done = False
        self._greenlet: Any = None
        self._waiters: collections.deque[Any] = collections.deque()

    def epoch(self, intended: float) -> float:
        """A monotonic intended start as epoch seconds (for the timeline)."""
        return intended + self._epoch_offset

    @property
    def started(self) -> bool:
        return self._greenlet is not None

    def start(self) -> None:
        import gevent

        if self._greenlet is not None:
            return
        now = self._clock()
        self._epoch_offset = self._wall() - now
        schedule = Schedule(now, self.rate, self.offset_s, self.limit)
        self._greenlet = gevent.spawn(self._run, schedule)

    def stop(self) -> None:
        self.stopped = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self._wake(len(self._waiters))

    def _wake(self, n: int) -> None:
        while n > 0 and self._waiters:
            self._waiters.popleft().set()
            n -= 1

    def _drop(self, tickets: list[Ticket]) -> None:
        for ticket in tickets:
            self._on_dropped(self.epoch(ticket.intended))

    def _run(self, schedule: Schedule) -> None:
        import gevent

        try:
            while not schedule.exhausted(self.issued):
                now = self._clock()
                due = schedule.due(now)
                fresh = 0
                while self.issued < due:
                    self.queue.put(Ticket(schedule.intended(self.issued)))
                    self.issued += 1
                    fresh += 1
                    self._on_scheduled()
                self._drop(self.queue.expire(now))
                self._wake(min(fresh, len(self.queue)))
                if schedule.exhausted(self.issued):
                    break
                gevent.sleep(max(0.0, schedule.intended(self.issued) - self._clock()))
            # the schedule is done: what is left is taken, or expires
            while len(self.queue):
                self._wake(len(self.queue))
                gevent.sleep(min(0.05, self.queue.drop_after_s))
                self._drop(self.queue.expire(self._clock()))
        finally:
            self.done = True
            self._wake(len(self._waiters))
            self._on_done()

    def take(self, stopping: Callable[[], bool]) -> Ticket | None:
        """Block until a ticket is due; count it late if it is. ``None``: no more tickets
        (schedule exhausted, pacer stopped, or ``stopping()``)."""
        from gevent.event import Event

        while True:
            if self.stopped or stopping():
                return None
            now = self._clock()
            ticket, expired = self.queue.take(now)
            self._drop(expired)
            if ticket is not None:
                lag = now - ticket.intended
                if lag > self.late_after_s:
                    self._on_late(lag * 1000.0, self.epoch(ticket.intended))
                return ticket
            if self.done:
                return None
            waiter = Event()
            self._waiters.append(waiter)
            waiter.wait(timeout=0.25)
            if not waiter.is_set():
                with contextlib.suppress(ValueError):  # woken meanwhile
                    self._waiters.remove(waiter)

"""One load-generating process's state during a test: the plan, who the clients are, the
iteration budget or the open-model pacer, and the loop body every user runs.

Imports Locust and gevent: only the load kit's process entry points use it.

A user's iteration (:meth:`Runtime.iterate`): wait for its turn (a ticket from the pacer in
the open model; a unit of the ``--iterations`` budget in the closed one), pick the next
scenario of the mix, build a fresh :class:`RegistryClient` over the user's Locust session
(so a fresh login), run the flow, and report the whole flow as one more request event
(``image pull``, ``image push``, ``login``, ``browse``) so that it lands in the same
statistics as its requests. Its latency runs from the intended start in the open model
(coordinated omission), from the real start in the closed one. When the budget is spent
and the last flow has ended, ``on_finished`` tells the runner (or the master) so.

Greenlets share this object without locks: none of its methods yields between reading and
writing its counters.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Pool
from locust.exception import StopUser

from keelhaul.client.images import BuiltImage, build_image
from keelhaul.client.registry import RegistryClient
from keelhaul.load.mix import Mix
from keelhaul.load.openmodel import Pacer, Ticket
from keelhaul.load.plan import RunPlan, SeedImage, push_tag
from keelhaul.load.scenarios import Scenario, scenario
from keelhaul.load.stats import RunStats
from keelhaul.load.target import Identities

__all__ = ["FLOW_REQUEST_TYPE", "Budget", "Runtime"]

FLOW_REQUEST_TYPE = "flow"
PLAN_WAIT_S = 30.0


class Budget:
    """``--iterations``: how many more flows this process may start (``None``: no cap)."""

    __slots__ = ("remaining",)

    def __init__(self, remaining: int | None) -> None:
        self.remaining = remaining

    def take(self) -> bool:
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    @property
    def spent(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


class Runtime:
    """The per-process side of a test. ``configure`` once per test, before users spawn."""

    def __init__(
        self,
        stats: RunStats,
        *,
        on_finished: Callable[[], None] = lambda: None,
    ) -> None:
        self.stats = stats
        self.on_finished = on_finished
        self.environment: Any = None
        self.plan: RunPlan | None = None
        self.identities: Identities | None = None
        self.mix: Mix | None = None
        self.pacer: Pacer | None = None
        self.budget = Budget(None)
        self.in_flight = 0
        self.stopping = False
        self.finished = False
        self._image_turn = 0
        self._push_turn = 0
        self._configured = Event()

    # --- wiring -------------------------------------------------------------------------

    def bind(self, environment: Any) -> None:
        """Listen to the Environment's test events."""
        self.environment = environment
        events = environment.events
        events.spawning_complete.add_listener(self._on_spawning_complete)
        events.test_stopping.add_listener(self._on_test_stopping)

    def configure(self, plan: RunPlan, identities: Identities) -> None:
        """A test begins with this process's share of ``plan``."""
        if self.pacer is not None:
            self.pacer.stop()
        self.plan = plan
        self.identities = identities
        self.mix = Mix(plan.mix)
        self.budget = Budget(plan.share.iterations)
        self.in_flight = 0
        self.stopping = False
        self.finished = False
        self._image_turn = plan.share.index
        self._push_turn = 0
        self.pacer = None
        share = plan.share
        if share.rate is not None:
            stats = self.stats
            self.pacer = Pacer(
                rate=share.rate,
                offset_s=share.offset_s,
                limit=share.iterations,
                late_after_s=plan.late_after_ms / 1000.0,
                drop_after_s=plan.drop_after_s,
                on_scheduled=stats.scheduled,
                on_late=stats.late,
                on_dropped=stats.dropped,
                on_done=self._check_finished,
            )
        self._configured.set()

    def _on_spawning_complete(self, **_kwargs: Any) -> None:
        if self.pacer is not None:
            self.pacer.start()

    def _on_test_stopping(self, **_kwargs: Any) -> None:
        self.stopping = True
        if self.pacer is not None:
            self.pacer.stop()

    # --- the users' loop ------------------------------------------------------------------

    def wait_configured(self) -> RunPlan:
        if self.plan is None and not self._configured.wait(timeout=PLAN_WAIT_S):
            raise StopUser()
        assert self.plan is not None
        return self.plan

    def iterate(self, user: Any) -> None:
        """One iteration of ``user`` (a :class:`~keelhaul.load.users` user)."""
        if self.stopping:
            raise StopUser()
        ticket: Ticket | None = None
        pacer = self.pacer
        if pacer is not None:
            ticket = pacer.take(lambda: self.stopping)
            if ticket is None:
                self._check_finished()
                raise StopUser()
        elif not self.budget.take():
            self._check_finished()
            raise StopUser()
        self.in_flight += 1
        try:
            self._flow(user, ticket)
        finally:
            self.in_flight -= 1
            self._check_finished()

    def _check_finished(self) -> None:
        if self.finished or self.in_flight:
            return
        pacer = self.pacer
        spent = (pacer.done and not len(pacer.queue)) if pacer is not None else self.budget.spent
        if spent:
            self.finished = True
            self.on_finished()

    def _flow(self, user: Any, ticket: Ticket | None) -> None:
        assert self.mix is not None
        chosen = scenario(self.mix.next())
        started = time.monotonic()
        context: dict[str, Any] = {}
        if ticket is not None and self.pacer is not None:
            started = ticket.intended
            context["when"] = self.pacer.epoch(ticket.intended)
        failure: BaseException | None = None
        length = 0
        try:
            length = self._run(user, chosen)
        except Exception as exc:  # noqa: BLE001 - a failed flow is a data point, not a crash
            failure = exc
        elapsed_ms = (time.monotonic() - started) * 1000.0
        self.environment.events.request.fire(
            request_type=FLOW_REQUEST_TYPE,
            name=chosen.entry,
            response_time=elapsed_ms,
            response_length=length,
            exception=failure,  # named as the failing step's error, e.g. "RegistryDenied: ..."
            context=context,
            response=None,
            url=None,
            start_time=time.time() - elapsed_ms / 1000.0,
        )

    # --- the flows ------------------------------------------------------------------------

    def client(self, user: Any, chosen: Scenario) -> RegistryClient:
        plan = self.plan
        identities = self.identities
        assert plan is not None and identities is not None
        return RegistryClient(
            user.transport,
            plan.registry,
            credentials=identities.for_scenario(chosen),
            plain_http=plan.plain_http,
            token_method=plan.token_method,
            parallel=plan.parallel,
            monolithic_max=0,  # docker's way: POST, one streamed PATCH, an empty PUT
        )

    def _run(self, user: Any, chosen: Scenario) -> int:
        if chosen.keep_client:
            if user.kept is None:
                user.kept = self.client(user, chosen)
            client = user.kept
        else:
            client = self.client(user, chosen)
        return chosen.flow(client, _Turn(self, user))

    def next_image(self) -> SeedImage:
        plan = self.plan
        assert plan is not None
        image = plan.images[self._image_turn % len(plan.images)]
        self._image_turn += 1
        return image

    def next_push(self) -> tuple[str, str, BuiltImage]:
        plan = self.plan
        assert plan is not None
        n = self._push_turn
        self._push_turn += 1
        built = build_image(
            layers=plan.layers, layer_size=plan.layer_size, seed=unique_seed(plan, n)
        )
        return plan.push_repo, push_tag(plan, plan.share.index, n), built

    def pushed(self, reference: str) -> None:
        plan = self.plan
        if plan is not None and plan.pushed_log is not None:
            _log_push(plan.pushed_log, reference)

    def _run_all(self, calls: Sequence[Callable[[], int]]) -> list[int]:
        """Blob transfers of one flow, ``parallel`` at once, as greenlets."""
        plan = self.plan
        if len(calls) <= 1 or plan is None or plan.parallel <= 1:
            return [call() for call in calls]
        spawn = Pool(plan.parallel).spawn if len(calls) > plan.parallel else gevent.spawn
        greenlets = [spawn(call) for call in calls]
        gevent.joinall(greenlets)
        for greenlet in greenlets:
            if greenlet.exception is not None:
                raise greenlet.exception
        return [int(g.value) for g in greenlets]


class _Turn:
    """One user's iteration as the flows see it (:class:`~keelhaul.load.scenarios.Turn`)."""

    __slots__ = ("_runtime", "_user")

    def __init__(self, runtime: Runtime, user: Any) -> None:
        self._runtime = runtime
        self._user = user

    @property
    def plan(self) -> RunPlan:
        plan = self._runtime.plan
        assert plan is not None
        return plan

    @property
    def have(self) -> set[str]:
        have: set[str] = self._user.have
        return have

    def next_image(self) -> SeedImage:
        return self._runtime.next_image()

    def next_push(self) -> tuple[str, str, BuiltImage]:
        return self._runtime.next_push()

    def pushed(self, reference: str) -> None:
        self._runtime.pushed(reference)

    def run_all(self, calls: Sequence[Callable[[], int]]) -> list[int]:
        return self._runtime._run_all(calls)


def unique_seed(plan: RunPlan, n: int) -> int:
    """A seed no other push of any run uses (so every push uploads new blobs)."""
    key = f"{plan.run_id}:{plan.share.index}:{n}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def _log_push(path: str, line: str) -> None:
    """One ``write(2)`` on an O_APPEND descriptor: lines from several processes never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)

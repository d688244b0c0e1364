"""Wiring :class:`~keelhaul.load.stats.RunStats` into a Locust ``Environment``.

Importing this module imports Locust (and so gevent's monkey-patching): only the load
kit's process entry points do.

=======================  ======================================================================
runner                   what :func:`attach` subscribes
=======================  ======================================================================
``LocalRunner``          ``request`` → :meth:`RunStats.record`
``WorkerRunner``         ``request`` → record; ``report_to_master`` → ``data["keelhaul"] =
                         stats.take_delta()``; ``test_stop`` → one report at once, so the
                         master has everything as soon as the worker has stopped
``MasterRunner``         ``worker_report`` → :meth:`RunStats.merge` (deduplicated per worker)
no runner yet            all of the above (each event only fires where it applies)
=======================  ======================================================================

End of a run, without loss or double counting: every sample is in exactly one delta (a
delta is what was recorded since the previous one), the master skips a delta it has already
merged from that worker (``seq``) and counts gaps (``lost_deltas``). A worker reports with
``runner.state == "stopped"`` only after its users are gone, so such a report completes
it; :meth:`Attachment.wait_for_final_reports` waits for one from every worker. The
caller's sequence on the master is::

    runner.stop(); attachment.wait_for_final_reports(timeout=10); runner.quit()

A request's bytes are ``context["bytes"]`` when the caller put them there (uploads: the
request body), else Locust's ``response_length``; ``context["when"]`` (epoch seconds)
overrides the second it is counted in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from locust.exception import CatchResponseError, RPCError
from locust.runners import STATE_MISSING, STATE_STOPPED, MasterRunner, WorkerRunner

from keelhaul.load.stats import RunStats

__all__ = ["DATA_KEY", "STATE_KEY", "Attachment", "attach", "error_message"]

DATA_KEY = "keelhaul"
STATE_KEY = "keelhaul_state"

logger = logging.getLogger(__name__)


def error_message(exception: BaseException | str | None) -> str:
    """How a failure is named in the errors table: the message of a ``response.failure``,
    else ``TypeName: message``."""
    if exception is None:
        return "(no message)"
    if isinstance(exception, str):
        return exception
    if isinstance(exception, CatchResponseError):
        return str(exception) or "CatchResponseError"
    text = str(exception)
    name = type(exception).__name__
    return f"{name}: {text}" if text else name


def _role(runner: Any) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "any" if runner is None else "local"


@dataclass
class Attachment:
    """What :func:`attach` did; ``detach()`` undoes it. Its ``on_*`` methods are the
    listeners."""

    environment: Any
    stats: RunStats
    role: str
    final: set[str] = field(default_factory=set)
    _undo: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def detach(self) -> None:
        while self._undo:
            self._undo.pop()()

    def pending_workers(self) -> set[str]:
        """Workers (master side) whose final report has not arrived yet."""
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return set()
        live = {node.id for node in runner.clients.all if node.state != STATE_MISSING}
        return live - self.final

    def wait_for_final_reports(self, timeout: float, poll: float = 0.05) -> bool:
        """On the master, after ``runner.stop()``: wait until every live worker has sent a
        report made after its users stopped. True when all did, False on timeout (the
        numbers may then be short; ``pending_workers()`` names who is missing)."""
        deadline = time.monotonic() + timeout
        while self.pending_workers():
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(poll)
        return True

    # --- listeners ------------------------------------------------------------------------

    def on_request(
        self,
        name: str,
        response_time: float,
        response_length: int | None = None,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_kwargs: Any,
    ) -> None:
        length = response_length or 0
        when = None
        if context:
            counted = context.get("bytes")
            if counted is not None:
                length = counted
            when = context.get("when")
        failed = exception is not None
        error = error_message(exception) if failed else None
        self.stats.record(name, response_time or 0.0, length, failed, when, error)

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        runner = self.environment.runner
        data[DATA_KEY] = self.stats.take_delta()
        data[STATE_KEY] = runner.state if runner is not None else None

    def on_worker_stop(self, **_kwargs: Any) -> None:
        worker = self.environment.runner
        if not isinstance(worker, WorkerRunner):
            return
        data: dict[str, Any] = {}
        self.environment.events.report_to_master.fire(client_id=worker.client_id, data=data)
        try:
            worker.send_message("stats", data)
        except RPCError as exc:  # the next periodic report carries the samples instead
            logger.warning("could not send the final statistics to the master: %s", exc)
            self.stats.restore(data[DATA_KEY])

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        doc = data.get(DATA_KEY)
        if doc is None:
            return
        self.stats.merge(doc, source=client_id)
        if data.get(STATE_KEY) == STATE_STOPPED:
            self.final.add(client_id)
        else:
            self.final.discard(client_id)

    def on_test_start(self, **_kwargs: Any) -> None:
        self.stats.reset()
        self.final.clear()

    def listen(self, hook: Any, handler: Callable[..., None]) -> None:
        hook.add_listener(handler)
        self._undo.append(lambda: hook.remove_listener(handler))


def attach(environment: Any, stats: RunStats, *, reset_on_test_start: bool = True) -> Attachment:
    """Subscribe ``stats`` to ``environment``'s events (see the module docstring).

    ``reset_on_test_start`` empties ``stats`` when a test starts, as Locust empties its own
    statistics, so a second run in the same process starts from zero.
    """
    events = environment.events
    role = _role(environment.runner)
    attachment = Attachment(environment, stats, role)
    if role in ("local", "worker", "any"):
        attachment.listen(events.request, attachment.on_request)
    if role in ("worker", "any"):
        attachment.listen(events.report_to_master, attachment.on_report_to_master)
        attachment.listen(events.test_stop, attachment.on_worker_stop)
    if role in ("master", "any"):
        attachment.listen(events.worker_report, attachment.on_worker_report)
    if reset_on_test_start:
        attachment.listen(events.test_start, attachment.on_test_start)
    return attachment

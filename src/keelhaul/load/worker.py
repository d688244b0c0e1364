"""``keelhaul load --worker --master-host H``: a load-generating process led by a master.

Imports Locust (and so gevent's monkey-patching): process entry point only.

The worker connects to the master's Locust port and waits. When a test starts, the master
sends the run plan with this worker's share (``keelhaul_plan``); the worker resolves its
own credentials for the plan's target (its ``--stack-dir`` for the master's local stack,
else flags, ``KEELHAUL_REGISTRY_*`` or auth files: credentials never travel between
processes), and its users start when Locust's spawn message follows. When its share of
``--iterations`` is spent it says so (``keelhaul_done``); if it cannot take part it says why
(``keelhaul_error``) and the master stops the run. It exits when the master quits, or
right after sending its final statistics when the run was headless.

While a test runs it shows its own share (``--print-every``, as the leading process): one
line redrawn each second on a terminal, a ``worker progress`` line at the interval
elsewhere, and a line when the test stops. Workers a ``--processes`` master starts itself
run with ``--print-every 0``: they share the master's terminal, where the merged block is.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment

from keelhaul.errors import KeelhaulError, LoadError
from keelhaul.load.hooks import attach
from keelhaul.load.live import DisplaySpec, LiveDisplay
from keelhaul.load.plan import DONE_MESSAGE, ERROR_MESSAGE, PLAN_MESSAGE, RunPlan
from keelhaul.load.results import write_text
from keelhaul.load.runtime import Runtime
from keelhaul.load.settings import LoadSettings
from keelhaul.load.stats import RunStats
from keelhaul.load.status import RunShape, WorkerProgress, progress_of, window
from keelhaul.load.target import Identities, worker_identities
from keelhaul.load.users import make_user_class

__all__ = ["run_worker", "stats_file"]

logger = logging.getLogger(__name__)
EXIT_DELAY_S = 1.0


def stats_file(directory: Path, pid: int) -> Path:
    """Where a worker writes its final statistics (``--worker-stats``)."""
    return directory / f"worker-{pid}.json"


def run_worker(
    settings: LoadSettings,
    *,
    environ: Mapping[str, str],
    home: Path,
    say: Callable[[str], None],
    display: DisplaySpec | None = None,
) -> None:
    stats = RunStats()
    runtime = Runtime(stats)
    env = Environment(user_classes=[make_user_class(runtime)], stop_timeout=settings.stop_timeout_s)
    runtime.bind(env)
    say(f"connecting to the master at {settings.master_host}:{settings.master_port}")
    try:
        runner = env.create_worker_runner(settings.master_host, settings.master_port)
    except ConnectionError:
        raise LoadError(
            f"no master answered at {settings.master_host}:{settings.master_port}"
        ) from None
    attach(env, stats)
    events: Any = env.events
    known: dict[tuple[str, bool], Identities] = {}

    def on_plan(msg: Any, **_kw: Any) -> None:
        try:
            plan = RunPlan.from_wire(msg.data)
            key = (plan.registry, plan.embedded)
            if key not in known:
                known[key] = worker_identities(
                    settings, registry=plan.registry, embedded=plan.embedded,
                    environ=environ, home=home,
                )  # fmt: skip
            runtime.configure(plan, known[key])
        except KeelhaulError as exc:
            logger.error("keelhaul worker: %s", exc)
            runner.send_message(ERROR_MESSAGE, {"error": str(exc)})

    runtime.on_finished = lambda: runner.send_message(
        DONE_MESSAGE, {"index": runtime.plan.share.index if runtime.plan else -1}
    )
    runner.register_message(PLAN_MESSAGE, on_plan)
    if settings.worker_stats_dir is not None:
        directory = settings.worker_stats_dir

        def keep_stats(**_kw: Any) -> None:
            write_text(stats_file(directory, os.getpid()), json.dumps(stats.snapshot()) + "\n")

        events.test_stop.add_listener(keep_stats)

    def exit_after_stop(**_kw: Any) -> None:
        """After a headless run, leave once the final statistics (sent by ``hooks`` on
        this same event, just before) are out: the master may be gone by then, and its
        ``quit`` with it."""
        plan = runtime.plan
        if plan is not None and plan.exit_after_stop:
            gevent.spawn_later(EXIT_DELAY_S, runner.greenlet.kill, block=False)

    events.test_stop.add_listener(exit_after_stop)
    live = _show_progress(display, runner, stats, settings, say) if display is not None else None
    # the master SIGTERMs local workers once it has their final statistics: end quietly
    on_term = gevent.signal_handler(signal.SIGTERM, runner.greenlet.kill, block=False)
    try:
        runner.greenlet.join()
    except KeyboardInterrupt:
        runner.quit()
    finally:
        on_term.cancel()
        if live is not None:  # SIGTERM or Ctrl-C mid-test: the terminal gets its cursor back
            live.stop()


def _show_progress(
    display: DisplaySpec,
    runner: Any,
    stats: RunStats,
    settings: LoadSettings,
    say: Callable[[str], None],
) -> LiveDisplay:
    """This worker's share, from each test's start to its stop (read on the display's timer)."""
    master = f"{settings.master_host}:{settings.master_port}"
    started: list[float] = []

    def read() -> WorkerProgress:
        now = time.time()
        since = started[-1] if started else None
        first, last = window(now, since)
        progress = progress_of(
            stats.live(first, last),
            elapsed_s=now - since if since is not None else 0.0,
            seconds=last - first + 1,
            shape=RunShape(None, None, None),
            users=int(runner.user_count),
        )
        return WorkerProgress(master, bool(runner.connected), str(runner.worker_state), progress)

    runner.environment.events.test_start.add_listener(lambda **_kw: started.append(time.time()))
    live = LiveDisplay(display, read, say)
    live.follow_tests(runner.environment.events, lambda: say(read().stopped_line()))
    return live

"""``keelhaul load``, the process that leads a run: one local process, or a Locust master.

Imports Locust (and so gevent's monkey-patching): import this module only from the load
command's code path, before anything opens a socket.

::

    settings ─▶ target (--target, or the local stack) ─▶ prepare: log in, seed, plan
      ─▶ Environment + runner:  local      LocalRunner, users here
                                processes  MasterRunner on 127.0.0.1, N ``--worker`` children
                                master     MasterRunner, remote ``--worker``s
      ─▶ start users; the plan goes to each worker as the test starts, with its share
      ─▶ stop at --run-time, when every process has spent its --iterations, or on Ctrl-C
      ─▶ final statistics (merged on the master) ─▶ delete pushes ─▶ reports, checks

Stopping is graceful: users finish the flow they are in (``--stop-timeout``), workers send
their last statistics, and the master waits for them before it reads the numbers.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gevent
import locust
from locust.env import Environment
from locust.runners import STATE_STOPPED, WORKER_REPORT_INTERVAL, MasterRunner

from keelhaul.errors import LoadError
from keelhaul.load.checks import Check
from keelhaul.load.children import LocalWorkers, worker_argv, worker_env
from keelhaul.load.hooks import STATE_KEY, attach
from keelhaul.load.live import DisplaySpec, LiveDisplay
from keelhaul.load.plan import DONE_MESSAGE, ERROR_MESSAGE, PLAN_MESSAGE, RunPlan
from keelhaul.load.prepare import Prepared, clean_up, new_run_id, prepare
from keelhaul.load.report_json import ClosedModel, OpenModel, RunInfo
from keelhaul.load.results import Outcome, conclude
from keelhaul.load.runtime import Runtime
from keelhaul.load.settings import LoadSettings
from keelhaul.load.stats import RunStats
from keelhaul.load.status import Progress, RunShape, progress_of, window
from keelhaul.load.target import Target, open_target
from keelhaul.load.users import make_user_class

__all__ = ["RunResult", "run"]

POLL_S = 0.05
FINAL_REPORT_WAIT_S = 15.0
REPORT_LAG_S = int(WORKER_REPORT_INTERVAL) + 1
"""On a master, the last seconds are not in yet: workers report every few seconds."""

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    outcome: Outcome
    interrupted: bool
    target: str
    notes: list[str] = field(default_factory=list)


@dataclass
class _Clock:
    """When the (last) test started and ended, as Locust's events say."""

    started: float | None = None
    ended: float | None = None

    def on_start(self, **_kw: Any) -> None:
        self.started, self.ended = time.time(), None

    def on_stop(self, **_kw: Any) -> None:
        if self.started is not None:
            self.ended = time.time()


class _Master:
    """The master's side of the worker protocol: plans out, done/errors in."""

    def __init__(self, runner: MasterRunner, plan: RunPlan) -> None:
        self.runner = runner
        self.plan = plan
        self.workers: list[str] = []
        self.done: set[str] = set()
        self.errors: list[str] = []
        self.last_final_report: float | None = None
        runner.register_message(DONE_MESSAGE, self._on_done)
        runner.register_message(ERROR_MESSAGE, self._on_error)

    def active(self) -> list[str]:
        r = self.runner
        return sorted(c.id for c in r.clients.ready + r.clients.spawning + r.clients.running)

    def on_test_start(self, **_kw: Any) -> None:
        self.workers = self.active()
        self.done = set()
        for index, client_id in enumerate(self.workers):
            share = self.plan.for_process(index, len(self.workers))
            self.runner.send_message(PLAN_MESSAGE, share.to_wire(), client_id=client_id)

    def on_worker_report(self, data: dict[str, Any], **_kw: Any) -> None:
        """A worker's report after its users stopped: the run's last requests are in."""
        if data.get(STATE_KEY) == STATE_STOPPED:
            self.last_final_report = time.time()

    def _on_done(self, msg: Any, **_kw: Any) -> None:
        self.done.add(msg.node_id)

    def _on_error(self, msg: Any, **_kw: Any) -> None:
        self.errors.append(str(msg.data.get("error", "unknown")) if msg.data else "unknown")

    @property
    def finished(self) -> bool:
        return bool(self.workers) and set(self.workers) <= self.done

    @property
    def hosts(self) -> int:
        return len({w.rsplit("_", 1)[0] for w in self.workers}) or 1


def run(
    settings: LoadSettings,
    checks: list[Check],
    *,
    environ: Mapping[str, str],
    home: Path,
    say: Callable[[str], None],
    display: DisplaySpec | None = None,
) -> RunResult:
    """The whole run; raises LoadError (nothing was loaded) or returns the outcome.
    ``display``: where progress goes while it runs (none: no progress)."""
    # SIGTERM (a CI job cancelled) ends the run like Ctrl-C: users stop, reports are written
    main = gevent.getcurrent()
    on_term = gevent.signal_handler(signal.SIGTERM, gevent.kill, main, KeyboardInterrupt)
    try:
        return _run(settings, checks, environ=environ, home=home, say=say, display=display)
    finally:
        on_term.cancel()


def _run(
    settings: LoadSettings,
    checks: list[Check],
    *,
    environ: Mapping[str, str],
    home: Path,
    say: Callable[[str], None],
    display: DisplaySpec | None,
) -> RunResult:
    target = open_target(settings, environ=environ, home=home, say=say)
    try:
        say(f"target {target.url}" + (" (local stack)" if target.embedded else ""))
        prepared = prepare(settings, target, new_run_id(), say)
        s = prepared.seeded
        say(
            f"test data: {len(s.images)} images in {settings.repo} "
            f"({s.present} present, {s.pushed} pushed)"
        )
        return _load(settings, checks, target, prepared, environ, say, display)
    finally:
        if target.started_stack and target.stack is not None and not settings.keep_stack:
            target.stack.down()
            say(f"stopped the local stack in {settings.stack_dir}")


def _model(settings: LoadSettings) -> ClosedModel | OpenModel:
    if settings.rate is not None:
        return OpenModel(rate=settings.rate, late_after_ms=settings.late_after_ms)
    return ClosedModel(users=settings.effective_users, spawn_rate=settings.effective_spawn_rate)


class _Session:
    """One Environment and its runner, from creation to quit."""

    def __init__(self, settings: LoadSettings, target: Target, plan: RunPlan) -> None:
        self.settings = settings
        self.plan = plan
        self.stats = RunStats()
        self.runtime = Runtime(self.stats)
        self.env = Environment(
            user_classes=[make_user_class(self.runtime)],
            host=plan.base_url,
            stop_timeout=settings.stop_timeout_s,
        )
        self.runtime.bind(self.env)
        events: Any = self.env.events
        self.clock = _Clock()
        events.test_start.add_listener(self.clock.on_start)
        events.test_stop.add_listener(self.clock.on_stop)
        self.children = LocalWorkers()
        self.master: _Master | None = None
        self.runner: Any
        if settings.worker_processes is not None or settings.master:
            self.runner = _master_runner(self.env, settings)
            final = plan.model_copy(update={"exit_after_stop": settings.autostart})
            self.master = _Master(self.runner, final)
            events.test_start.add_listener(self.master.on_test_start)
            events.worker_report.add_listener(self.master.on_worker_report)
        else:
            self.runner = self.env.create_local_runner()
            share = plan.for_process(0, 1)
            identities = target.identities
            events.test_start.add_listener(lambda **_kw: self.runtime.configure(share, identities))
        self.attachment = attach(self.env, self.stats)
        self.web: Any = None

    def drive(
        self,
        target: Target,
        environ: Mapping[str, str],
        say: Callable[[str], None],
        display: DisplaySpec | None = None,
    ) -> bool:
        """Workers in, the test run and stopped, the last statistics in. True: Ctrl-C."""
        settings, master, runner = self.settings, self.master, self.runner
        if master is not None:
            _gather_workers(settings, master, self.children, target, environ, say)
        if settings.web:
            # the UI's index page parses sys.argv as Locust's own command line: ours is done
            sys.argv[1:] = []
            self.web = self.env.create_web_ui(settings.web_host, settings.web_port)
            say(f"Locust web UI on http://{settings.web_host}:{_web_port(self.web)}/")
        interrupted = ending = False
        live: LiveDisplay | None = None
        if display is not None:
            live = LiveDisplay(display, lambda: self.progress(display), say)

        def stopped_from_the_ui() -> None:
            if not ending:
                say(self.progress(display).stopped_line())

        try:
            try:
                if settings.autostart:
                    if live is not None and settings.web:  # the UI may stop it, start another
                        live.follow_tests(self.env.events, stopped_from_the_ui)
                    _headless(settings, runner, self.runtime, master, say, live)
                else:
                    if live is not None:  # each test started from the UI, shown here too
                        live.follow_tests(self.env.events, stopped_from_the_ui)
                    say(
                        "start the test from the web UI; Ctrl-C ends the run and writes the reports"
                    )
                    runner.greenlet.join()
            except KeyboardInterrupt:
                interrupted = True
                say("interrupted: stopping the users")
            ending = True
            runner.stop()
            if master is not None and not self.attachment.wait_for_final_reports(
                FINAL_REPORT_WAIT_S
            ):
                missing = ", ".join(sorted(self.attachment.pending_workers()))
                say(f"warning: no final statistics from {missing}; the numbers may be short")
        finally:
            if live is not None:
                live.stop()
        if master is not None and master.errors:
            raise LoadError(f"a worker failed: {master.errors[0]}")
        return interrupted

    def progress(self, display: DisplaySpec | None = None) -> Progress:
        """The run so far, for the live display (read on its timer, off the users' path)."""
        settings, master = self.settings, self.master
        now = time.time()
        started = self.clock.started
        first, last = window(now, started, REPORT_LAG_S if master is not None else 0)
        since = display.diagnosis_since if display is not None else None
        top = display.diagnosis_top if display is not None else None
        workers = None
        if master is not None:
            expected = settings.worker_processes or settings.expect_workers
            workers = (len(master.active()), expected)
        return progress_of(
            self.stats.live(first, last),
            elapsed_s=now - started if started is not None else 0.0,
            seconds=last - first + 1,
            shape=RunShape(settings.effective_run_time_s, settings.iterations, settings.rate),
            users=int(self.runner.user_count),
            workers=workers,
            diagnosis_s=now - since if since is not None else None,
            diagnosis_top=top() if top is not None else None,
        )

    def close(self) -> None:
        self.runner.quit()
        if self.web is not None:
            self.web.stop()
        self.children.stop(grace_s=0.2)

    def info(self, target: Target, labels: Mapping[str, str]) -> RunInfo:
        settings, master, clock = self.settings, self.master, self.clock
        started = clock.started or time.time()
        ended = clock.ended or time.time()
        if master is not None and master.last_final_report is not None:
            ended = min(ended, master.last_final_report)  # the master's stop polls once a second
        mode: Literal["local", "processes", "distributed"] = "local"
        if master is not None:
            mode = "distributed" if settings.master else "processes"
        return RunInfo(
            target=target.url,
            started_at=started,
            duration_s=max(1e-3, ended - started),
            model=_model(settings),
            processes=len(master.workers) if master is not None else 1,
            hosts=master.hosts if master is not None else 1,
            mode=mode,
            scenario=dict(settings.mix),
            locust_version=locust.__version__,
            labels={"run_id": self.plan.run_id, "repository": self.plan.repo, **labels},
        )


def _load(
    settings: LoadSettings,
    checks: list[Check],
    target: Target,
    prepared: Prepared,
    environ: Mapping[str, str],
    say: Callable[[str], None],
    display: DisplaySpec | None,
) -> RunResult:
    session = _Session(settings, target, prepared.plan)
    notes: list[str] = []
    labels: dict[str, str] = {}
    try:
        interrupted = session.drive(target, environ, say, display)
    finally:
        session.close()
        note, labels = clean_up(settings, target, prepared)  # also after a failed run
        if note:
            notes.append(note)
    lost = session.stats.lost_deltas
    if lost:
        notes.append(f"Warning: {lost} statistics reports from workers were lost.")
    outcome = conclude(
        session.stats,
        session.info(target, labels),
        checks,
        json_path=settings.json_path,
        html_path=settings.html_path,
        notes=notes,
    )
    return RunResult(outcome, interrupted, target.url, notes)


def _web_port(web: Any, timeout_s: float = 5.0) -> int:
    """The UI's port, once its server (started in a greenlet) listens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server = web.server
        if server is not None and getattr(server, "socket", None) is not None:
            return int(server.server_port)
        gevent.sleep(0.01)
    raise LoadError("the web UI did not start (is its --web-port in use?)")


def _master_runner(env: Environment, settings: LoadSettings) -> MasterRunner:
    """Locust's master: on a free loopback port for local workers, else where asked."""
    host, port = (
        ("127.0.0.1", 0)
        if settings.worker_processes is not None
        else (settings.master_bind_host, settings.master_port)
    )
    try:
        runner: MasterRunner = env.create_master_runner(host, port)
    except SystemExit:  # Locust's answer to a port in use
        raise LoadError(
            f"cannot listen for workers on {host}:{port} (in use?); choose --master-port"
        ) from None
    return runner


def _gather_workers(
    settings: LoadSettings,
    master: _Master,
    children: LocalWorkers,
    target: Target,
    environ: Mapping[str, str],
    say: Callable[[str], None],
) -> None:
    """Start the local workers (``--processes``) and wait until the expected ones are in."""
    expected = settings.worker_processes or settings.expect_workers
    if settings.worker_stats_dir is not None:
        settings.worker_stats_dir.mkdir(parents=True, exist_ok=True)
    if settings.worker_processes is not None:
        port = master.runner.server.port
        argv = worker_argv(settings, master_port=port, embedded=target.embedded)
        children.start(argv, worker_env(settings, environ), expected)
        say(f"started {expected} worker processes (pids {', '.join(map(str, children.pids))})")
    else:
        say(
            f"master on {settings.master_bind_host}:{settings.master_port}: waiting for "
            f"{expected} workers (keelhaul load --worker --master-host THIS_HOST)"
        )
    deadline = time.monotonic() + settings.expect_workers_timeout_s
    while len(master.active()) < expected:
        dead = children.exited()
        if dead:
            pid, code = dead[0]
            raise LoadError(f"worker process {pid} exited with code {code} before the run")
        if time.monotonic() >= deadline:
            raise LoadError(
                f"only {len(master.active())} of {expected} workers connected within "
                f"{settings.expect_workers_timeout_s:g} s"
            )
        gevent.sleep(POLL_S)


def _headless(
    settings: LoadSettings,
    runner: Any,
    runtime: Runtime,
    master: _Master | None,
    say: Callable[[str], None],
    live: LiveDisplay | None = None,
) -> None:
    users, spawn_rate = settings.effective_users, settings.effective_spawn_rate
    run_time = settings.effective_run_time_s
    model = f"{settings.rate:g}/s arrivals, {users} users" if settings.rate else f"{users} users"
    bounds = [f"{run_time:g} s" if run_time else "", f"{settings.iterations} iterations"
              if settings.iterations else ""]  # fmt: skip
    say(f"running: {model}, mix {settings.mix_text}, until {' or '.join(b for b in bounds if b)}")
    spawner = gevent.spawn(runner.start, users, spawn_rate)
    if live is not None:
        live.start()
    deadline = time.monotonic() + run_time if run_time else None
    while True:
        gevent.sleep(POLL_S)
        if deadline is not None and time.monotonic() >= deadline:
            break
        if master is None:
            if runtime.finished:
                break
        else:
            if master.errors or master.finished:
                break
            if spawner.dead and not master.active():
                say("every worker left; stopping")
                break
    spawner.kill(block=True)

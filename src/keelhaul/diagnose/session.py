"""Run a diagnosis: in this process for a fixed time (``keelhaul diagnose``), or beside a
load in an agent process (``keelhaul load --diagnose``) that the caller starts and stops.

The agent is a separate process on purpose: the load generator's process (Locust, gevent)
stays exactly as busy as it would be without the diagnosis, and the diagnosis' own CPU
shows up as its own tier in the report instead of hiding in the generator's.

::

    diagnosis = Diagnosis.start(stack_dir, load_pids=[os.getpid()], profile=True)
    ...                                     # the load runs
    report = diagnosis.stop(client=client_from_report(load_report_document))
    write_reports(report, json_path=..., html_path=...)
    print(report.verdict.text())
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from keelhaul.atomicfile import write_text as atomic_write_text
from keelhaul.diagnose.analysis import Profile, Report, analyse
from keelhaul.diagnose.loadreport import ClientRun
from keelhaul.diagnose.model import Collection
from keelhaul.diagnose.profile import BESIDE_LOAD_RATE, Profiler, analyse_profile
from keelhaul.diagnose.report_html import render_html
from keelhaul.diagnose.report_json import build_document, dumps
from keelhaul.diagnose.sampler import Sampler
from keelhaul.diagnose.watch import build_collectors, describe, load_targets
from keelhaul.errors import DiagnoseError, ProfileError

__all__ = ["Diagnosis", "diagnose_for", "profile_or_note", "write_reports", "write_text"]

READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def write_text(path: Path, text: str) -> None:
    """Atomically (temporary file + rename), creating the parent directory."""
    atomic_write_text(path, text, error=DiagnoseError)


def write_reports(report: Report, *, json_path: Path | None, html_path: Path | None) -> None:
    if json_path is None and html_path is None:
        return
    document = build_document(report)
    if json_path is not None:
        write_text(json_path, dumps(document))
    if html_path is not None:
        write_text(html_path, render_html(document))


def profile_or_note(raw: Path | None, error: str | None = None) -> Profile | None:
    """The call graph of a recorded profile; a failure becomes a note in the report."""
    if raw is None and error is None:
        return None
    if error is not None:
        return Profile(summary={}, dot="", note=f"no call graph: {error}")
    assert raw is not None
    try:
        return analyse_profile(raw, title="token service workers (py-spy samples)")
    except (ProfileError, OSError) as exc:
        return Profile(summary={}, dot="", note=f"no call graph: {exc}")


def diagnose_for(
    stack_dir: Path,
    seconds: float,
    *,
    load_pids: Sequence[int] = (),
    profile: bool = False,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = lambda _m: None,
    progress: Callable[[float, Callable[[], Collection]], None] | None = None,
) -> Report:
    """Watch a running stack for ``seconds`` (or until ``stop`` is set) in this process.
    ``progress(seconds_watched, collection_so_far)`` is called about once a second."""
    _state, targets = load_targets(stack_dir, load_pids=tuple(load_pids))
    sampler = Sampler(build_collectors(targets), meta=describe(targets))
    event = stop or threading.Event()
    with tempfile.TemporaryDirectory(prefix="keelhaul-diagnose-") as work:
        profiler: Profiler | None = None
        error: str | None = None
        if profile and "auth" not in targets.leaders:
            error = "the stack has no token service to profile"
        elif profile:
            profiler = Profiler(
                targets.leaders["auth"], Path(work) / "profile.txt", rate=BESIDE_LOAD_RATE
            )
        sampler.start()
        raw: Path | None = None
        try:
            if profiler is not None:
                profiler.start()
            say(f"watching {targets.stack_dir} for {seconds:g} s")
            _wait(event, seconds, progress, sampler.collection)
        finally:
            if profiler is not None:
                try:
                    raw = profiler.stop()
                except ProfileError as exc:
                    error = str(exc)
            collection = sampler.stop()
        recorded = profile_or_note(raw, error) if profile else None
    return analyse(collection, profile=recorded)


def _wait(
    event: threading.Event,
    seconds: float,
    progress: Callable[[float, Callable[[], Collection]], None] | None,
    collection: Callable[[], Collection],
) -> None:
    """``event.wait(seconds)``, telling ``progress`` once a second how long it has been."""
    if progress is None:
        event.wait(seconds)
        return
    started = time.monotonic()
    while True:
        left = seconds - (time.monotonic() - started)
        if left <= 0 or event.wait(min(1.0, left)):
            return
        progress(time.monotonic() - started, collection)


class Diagnosis:
    """An agent process sampling a stack until :meth:`stop`; see the module docstring."""

    def __init__(
        self, proc: subprocess.Popen[bytes], workdir: Path, profile: bool, *, owned: bool = False
    ) -> None:
        self._proc = proc
        self.workdir = workdir
        self.profile = profile
        self._owned = owned
        """The work directory is a temporary one of ours: removed after :meth:`stop`."""

    @property
    def pid(self) -> int:
        return self._proc.pid

    @classmethod
    def start(
        cls,
        stack_dir: Path | None,
        *,
        load_pids: Sequence[int] = (),
        profile: bool = False,
        workdir: Path | None = None,
        wait_for_stack: float = 60.0,
        block: bool = True,
    ) -> Diagnosis:
        """Start sampling; with ``block``, return once the agent has taken its first reading.

        ``stack_dir`` None: only the load generator is sampled here (the Prometheus source).

        ``wait_for_stack``: how long the agent waits for the stack to be running (the load
        command may start the stack after the diagnosis; then pass ``block=False``).
        """
        work = (
            Path(workdir)
            if workdir is not None
            else Path(tempfile.mkdtemp(prefix="keelhaul-diagnose-"))
        )
        work.mkdir(parents=True, exist_ok=True)
        where = ["--dir", str(stack_dir)] if stack_dir is not None else ["--generator-only"]
        argv = [
            sys.executable, "-m", "keelhaul.diagnose.agent",
            *where,
            "--workdir", str(work),
            "--parent", str(os.getpid()),
            "--wait", str(wait_for_stack),
        ]  # fmt: skip
        for pid in load_pids:
            argv += ["--load-pid", str(pid)]
        if profile:
            argv.append("--profile")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
        with (work / "agent.log").open("wb") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        diagnosis = cls(proc, work, profile, owned=workdir is None)
        if block:
            diagnosis._wait_ready(wait_for_stack + READY_TIMEOUT)
        return diagnosis

    def _log_tail(self) -> str:
        path = self.workdir / "agent.log"
        return path.read_text(errors="replace")[-800:].strip() if path.exists() else ""

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self.workdir / "ready").exists():
            if self._proc.poll() is not None:
                raise DiagnoseError(f"the diagnosis could not start:\n{self._log_tail()}")
            if time.monotonic() >= deadline:
                self.kill()
                raise DiagnoseError("the diagnosis did not start in time")
            time.sleep(0.05)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def stop(self, *, client: ClientRun | None = None) -> Report:
        """Stop sampling, then analyse (with the client's numbers, when given)."""
        try:
            return self._stop(client)
        finally:
            if self._owned:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_collection(self) -> Collection:
        """Stop sampling and return the raw ticks (the Prometheus source merges them)."""
        try:
            return self._stop_agent()
        finally:
            if self._owned:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop(self, client: ClientRun | None) -> Report:
        collection = self._stop_agent()
        profile = None
        if self.profile:
            raw = self.workdir / "profile.txt"
            note_path = self.workdir / "profile-error.txt"
            error = note_path.read_text().strip() if note_path.exists() else None
            if error is None and not raw.exists():
                error = "py-spy wrote nothing"
            profile = profile_or_note(raw if error is None else None, error)
        return analyse(collection, client=client, profile=profile)

    def _stop_agent(self) -> Collection:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DiagnoseError("the diagnosis did not stop in time") from None
        path = self.workdir / "collection.json"
        if self._proc.returncode != 0 or not path.exists():
            raise DiagnoseError(
                f"the diagnosis failed (exit {self._proc.returncode}):\n{self._log_tail()}"
            )
        return Collection.from_json(json.loads(path.read_text(encoding="utf-8")))

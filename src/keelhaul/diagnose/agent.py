"""The diagnosis agent: ``python -m keelhaul.diagnose.agent --dir STACK --workdir W``.

With ``--generator-only`` (the Prometheus source: the stack is remote) it samples only
the load generator's processes and its own, and needs no stack directory.

Started by :class:`keelhaul.diagnose.session.Diagnosis`; samples the stack once a second
(and records a py-spy profile with ``--profile``) until SIGTERM or SIGINT, then writes
``W/collection.json`` (and ``W/profile.txt``). It touches ``W/ready`` once the first
reading is taken, writes ``W/progress.json`` every few seconds (the load's live block shows
it), and stops by itself when its parent is gone or after ``--max-seconds``, so it never
outlives the run it watches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path

from keelhaul.atomicfile import write_text
from keelhaul.diagnose.profile import BESIDE_LOAD_RATE, Profiler
from keelhaul.diagnose.promrun import generator_sampler
from keelhaul.diagnose.sampler import Sampler
from keelhaul.diagnose.watch import build_collectors, describe, load_targets
from keelhaul.diagnose.watching import progress_document
from keelhaul.errors import DiagnoseError, KeelhaulError, ProfileError
from keelhaul.stack.procs import is_alive

__all__ = ["main"]

MAX_SECONDS = 6 * 3600
PROGRESS_EVERY_S = 5


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="keelhaul.diagnose.agent")
    p.add_argument("--dir", type=Path)
    p.add_argument("--generator-only", action="store_true")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--load-pid", type=int, action="append", default=[])
    p.add_argument("--parent", type=int)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the stack")
    p.add_argument("--max-seconds", type=float, default=MAX_SECONDS)
    return p.parse_args(argv)


def _wait_for_stack(directory: Path, seconds: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            load_targets(directory)
            return
        except KeelhaulError:
            if time.monotonic() >= deadline or stop.is_set():
                raise
        stop.wait(0.2)


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_a: stop.set())
    profiler = None
    if args.generator_only:
        sampler = generator_sampler(tuple(args.load_pid))
    else:
        if args.dir is None:
            raise DiagnoseError("the agent needs --dir (or --generator-only)")
        _wait_for_stack(args.dir, args.wait, stop)
        _state, targets = load_targets(args.dir, load_pids=tuple(args.load_pid))
        sampler = Sampler(build_collectors(targets), meta=describe(targets))
    if args.profile and not args.generator_only:
        if "auth" in targets.leaders:
            profiler = Profiler(
                targets.leaders["auth"], args.workdir / "profile.txt", rate=BESIDE_LOAD_RATE
            )
        else:
            (args.workdir / "profile-error.txt").write_text("the stack has no token service\n")
    sampler.start()
    if profiler is not None:
        profiler.start()
    (args.workdir / "ready").touch()
    started = time.monotonic()
    deadline = started + args.max_seconds
    beats = 0
    while not stop.wait(1.0):
        if (args.parent is not None and not is_alive(args.parent)) or time.monotonic() >= deadline:
            break
        beats += 1
        if beats % PROGRESS_EVERY_S == 0:
            doc = progress_document(time.monotonic() - started, sampler.collection())
            with contextlib.suppress(KeelhaulError):  # progress only: the diagnosis goes on
                write_text(args.workdir / "progress.json", json.dumps(doc))
    if profiler is not None:
        try:
            profiler.stop()
        except ProfileError as exc:
            (args.workdir / "profile-error.txt").write_text(f"{exc}\n")
    collection = sampler.stop()
    write_text(
        args.workdir / "collection.json", json.dumps(collection.to_json()), error=DiagnoseError
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        return run(args)
    except KeelhaulError as exc:
        print(f"keelhaul diagnose: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Showing a run while it runs: a greenlet of the load process draws its progress.

On a terminal, a status block redrawn once a second with rich (``rich.live``: drawn in
place, our other messages scroll above it, and it vanishes when the run ends, giving way to
the final table). Not on a terminal, one plain line every ``--print-every`` seconds through
``say``. Either way it reads only what the run already keeps (:meth:`RunStats.live`), on its
own timer: nothing is added to the users' path, and a display that fails stops drawing with
one warning instead of stopping the run.

What is drawn is any :class:`Shown` reading: the leading process's
:class:`~keelhaul.load.status.Progress` (headless, or each test started from ``--web``), a
``--worker``'s :class:`~keelhaul.load.status.WorkerProgress`.

Imports gevent: used by the load kit's processes only.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import gevent
from rich.console import Console, Group
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.text import Text

__all__ = ["DisplaySpec", "LiveDisplay", "Shown"]

TERMINAL_EVERY_S = 1.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DisplaySpec:
    """Where and how often progress goes: chosen by the CLI, which knows the terminal."""

    stream: TextIO
    terminal: bool
    every_s: float
    """Plain lines' interval; 0: no progress at all."""
    diagnosis_since: float | None = None
    """Epoch seconds the ``--diagnose`` agent started watching, if it did."""
    diagnosis_top: Callable[[], tuple[str, float] | None] | None = None
    """The agent's tier with the highest CPU demand so far (name, CPUs), once it knows."""


class Shown(Protocol):
    """A reading the display can draw: a few lines on a terminal, one line elsewhere."""

    def block(self) -> list[str]: ...

    def line(self) -> str: ...


class LiveDisplay:
    """Draws ``read()`` every second (terminal) or every ``every_s`` seconds (plain lines).

    ``start`` once the users start, ``stop`` once the last statistics are in (or
    :meth:`follow_tests`: from each test's start to its stop). ``frames`` and
    ``draw_cpu_s`` count what drawing cost this process (CPU seconds, read and draw)."""

    def __init__(
        self, spec: DisplaySpec, read: Callable[[], Shown], say: Callable[[str], None]
    ) -> None:
        self._spec = spec
        self._read = read
        self._say = say
        self._greenlet: gevent.Greenlet[[], None] | None = None
        self._live: Live | None = None
        self._logs = _LogsAbove(None)
        self.frames = 0
        self.draw_cpu_s = 0.0

    def follow_tests(self, events: Any, on_stop: Callable[[], None] | None = None) -> None:
        """Draw from each test's start to its stop (Locust's ``test_start`` / ``test_stop``:
        tests started from the web UI, or by a master); ``on_stop`` once the block is gone."""

        def stopped(**_kw: Any) -> None:
            self.stop()
            if on_stop is not None:
                on_stop()

        events.test_start.add_listener(lambda **_kw: self.start())
        events.test_stop.add_listener(stopped)

    @property
    def enabled(self) -> bool:
        return self._spec.every_s > 0

    def start(self) -> None:
        if not self.enabled or self._greenlet is not None:
            return
        if self._spec.terminal:
            console = Console(file=self._spec.stream, force_terminal=True, highlight=False)
            self._live = Live(
                console=console,
                auto_refresh=False,  # our greenlet redraws: no thread of rich's own
                transient=True,
                redirect_stdout=False,
                redirect_stderr=True,
            )
            self._live.start()
            self._logs = _LogsAbove(self._spec.stream)
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.kill(block=True)
        live, self._live = self._live, None
        if live is not None:
            self._logs.restore()
            live.stop()

    def _loop(self) -> None:
        every = TERMINAL_EVERY_S if self._spec.terminal else self._spec.every_s
        while True:
            gevent.sleep(every)
            try:
                self.frame()
            except Exception as exc:  # noqa: BLE001 - the run matters more than its display
                logger.warning("progress display stopped: %s: %s", type(exc).__name__, exc)
                return

    def frame(self) -> None:
        """Read and draw once (the loop's step; ``bench/load_bench.py`` times it)."""
        began = time.process_time()
        shown = self._read()
        live = self._live
        if live is None:
            self._say(shown.line())
        else:
            lines = [Text(line) for line in shown.block()]  # Text: no markup in errors
            lines[0].stylize("bold")
            live.update(Group(*lines), refresh=True)
        self.frames += 1
        self.draw_cpu_s += time.process_time() - began


class _LogsAbove:
    """While the block is drawn, log handlers writing to its stream write through rich's
    stand-in for ``sys.stderr`` instead, so that their lines scroll above the block rather
    than cut through it (a handler keeps the stream it was made with, e.g. Locust's or
    ``logging.basicConfig``'s); :meth:`restore` gives them their stream back."""

    def __init__(self, stream: TextIO | None) -> None:
        self._moved: list[tuple[logging.StreamHandler[Any], Any]] = []
        proxy = sys.stderr
        if stream is None or not isinstance(proxy, FileProxy):  # rich did not redirect
            return
        for handler in _handlers():
            if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
                self._moved.append((handler, handler.setStream(proxy)))

    def restore(self) -> None:
        moved, self._moved = self._moved, []
        for handler, stream in moved:
            handler.setStream(stream)


def _handlers() -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger)
    ]
    seen: dict[int, logging.Handler] = {}
    for found in loggers:
        for handler in found.handlers:
            seen.setdefault(id(handler), handler)
    return list(seen.values())

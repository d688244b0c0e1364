"""Showing a run while it runs: a greenlet in the leading process draws its progress.

On a terminal, a status block redrawn once a second with rich (``rich.live``: drawn in
place, our other messages scroll above it, and it vanishes when the run ends, giving way to
the final table). Not on a terminal, one plain line every ``--print-every`` seconds through
``say``. Either way it reads only what the run already keeps (:meth:`RunStats.live`), on its
own timer: nothing is added to the users' path, and a display that fails stops drawing with
one warning instead of stopping the run.

Imports gevent: used by the load kit's leading process only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import gevent
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from keelhaul.load.status import Progress, block_lines, plain_line

__all__ = ["DisplaySpec", "LiveDisplay"]

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


class LiveDisplay:
    """Draws ``read()`` every second (terminal) or every ``every_s`` seconds (plain lines).

    ``start`` once the users start, ``stop`` once the last statistics are in."""

    def __init__(
        self, spec: DisplaySpec, read: Callable[[], Progress], say: Callable[[str], None]
    ) -> None:
        self._spec = spec
        self._read = read
        self._say = say
        self._greenlet: gevent.Greenlet[[], None] | None = None
        self._live: Live | None = None

    @property
    def enabled(self) -> bool:
        return self._spec.every_s > 0

    def start(self) -> None:
        if not self.enabled or self._greenlet is not None:
            return
        if self._spec.terminal:
            console = Console(file=self._spec.stream, highlight=False)
            self._live = Live(
                console=console,
                auto_refresh=False,  # our greenlet redraws: no thread of rich's own
                transient=True,
                redirect_stdout=False,
                redirect_stderr=True,
            )
            self._live.start()
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.kill(block=True)
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _loop(self) -> None:
        every = TERMINAL_EVERY_S if self._spec.terminal else self._spec.every_s
        while True:
            gevent.sleep(every)
            try:
                self._draw(self._read())
            except Exception as exc:  # noqa: BLE001 - the run matters more than its display
                logger.warning("progress display stopped: %s: %s", type(exc).__name__, exc)
                return

    def _draw(self, progress: Progress) -> None:
        live = self._live
        if live is None:
            self._say(plain_line(progress))
            return
        lines = [Text(line) for line in block_lines(progress)]  # Text: no markup in errors
        lines[0].stylize("bold")
        live.update(Group(*lines), refresh=True)

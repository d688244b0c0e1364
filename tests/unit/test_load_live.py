"""The live display's terminal block and the log lines written while it is drawn."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from keelhaul.load.live import DisplaySpec, LiveDisplay

pytestmark = pytest.mark.unit


class _Reading:
    def block(self) -> list[str]:
        return ["elapsed 1 s", "requests 10"]

    def line(self) -> str:
        return "elapsed=1s requests=10"


def test_a_log_line_written_while_the_block_is_drawn_scrolls_above_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handler made before the block (basicConfig's, Locust's) keeps the stream it was made
    with: while the block is drawn it writes through rich's stand-in, then gets it back."""
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(terminal)
    log = logging.getLogger("keelhaul.test.live")
    log.addHandler(handler)
    log.propagate = False
    elsewhere = logging.StreamHandler(io.StringIO())  # another stream: left alone
    log.addHandler(elsewhere)
    display = LiveDisplay(DisplaySpec(terminal, terminal=True, every_s=10), _Reading, print)
    try:
        display.start()
        assert sys.stderr is not terminal and handler.stream is sys.stderr
        assert elsewhere.stream is not sys.stderr
        display.frame()
        log.warning("Ramping to 4 users")
        display.frame()
    finally:
        display.stop()
        log.removeHandler(handler)
        log.removeHandler(elsewhere)
    assert handler.stream is terminal and sys.stderr is terminal
    out = terminal.getvalue()
    # through rich: the line is printed by the console that draws the block (a cursor move
    # clears the block first), not written into the middle of it
    line = out.index("Ramping to 4 users")
    assert "\x1b[" in out[:line] and out.rfind("requests 10", 0, line) >= 0
    assert out.find("requests 10", line) >= 0  # drawn again below it

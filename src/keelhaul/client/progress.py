"""Transfer progress for the CLI: one tqdm bar in bytes/s, only when it helps.

A bar appears only on a terminal (stderr is a TTY), without ``--quiet``, and once the
transfer is known to exceed a few MiB; otherwise :class:`TransferProgress` counts silently.
Safe to update from the transfer threads.
"""

from __future__ import annotations

import sys
import threading
from typing import NoReturn, TextIO

from tqdm import tqdm

__all__ = ["BAR_THRESHOLD", "TransferProgress"]

BAR_THRESHOLD = 4 << 20


class TransferProgress:
    def __init__(
        self,
        label: str,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        threshold: int = BAR_THRESHOLD,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.threshold = threshold
        self.total = 0
        self.done = 0
        self._bar: tqdm[NoReturn] | None = None
        self._lock = threading.Lock()

    def add_total(self, n: int) -> None:
        with self._lock:
            self.total += n
            if self._bar is not None:
                self._bar.total = self.total
                self._bar.refresh()
            elif self.enabled and self.total >= self.threshold:
                self._bar = tqdm(
                    total=self.total,
                    initial=self.done,
                    desc=self.label,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    file=self.stream,
                    leave=False,
                    dynamic_ncols=True,
                )

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

"""Read every collector once per wall-clock second, in one thread, with aligned timestamps.

Ticks fall on whole seconds (``t = 12:00:05.000``): every collector's reading in a tick
is stamped with that second, so the proxy's, the registry's and the token service's
series line up with each other and with the load kit's per-second timeline. The first
and the last reading are stamped with the time they were taken, so that rates over the
partial seconds at both ends stay right. A tick that overruns (a collector stuck on its
timeout) delays the next one instead of piling up.

Memory is bounded: the newest ``max_ticks`` ticks are kept (an hour by default).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keelhaul.diagnose.collectors import Collector
from keelhaul.diagnose.model import Collection, Reading, Tick

__all__ = ["Sampler"]

DEFAULT_MAX_TICKS = 3600


class Sampler:
    def __init__(
        self,
        collectors: Sequence[Collector],
        *,
        interval: float = 1.0,
        max_ticks: int = DEFAULT_MAX_TICKS,
        meta: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._collectors = list(collectors)
        self._interval = interval
        self._ticks: deque[Tick] = deque(maxlen=max_ticks)
        self._meta = dict(meta or {})
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        """Ticks pushed out by ``max_ticks``."""

    def tick(self, t: float | None = None) -> Tick:
        """Read every collector now; one collector failing never stops the others."""
        when = self._clock() if t is None else t
        readings: dict[str, Reading] = {}
        for collector in self._collectors:
            try:
                readings[collector.name] = collector.collect()
            except Exception as exc:  # noqa: BLE001 - recorded, and the other tiers still count
                readings[collector.name] = Reading(error=f"{type(exc).__name__}: {exc}"[:300])
        tick = Tick(t=when, readings=readings)
        with self._lock:
            if len(self._ticks) == self._ticks.maxlen:
                self.dropped += 1
            self._ticks.append(tick)
        return tick

    def _next_boundary(self) -> float:
        now = self._clock()
        return math.floor(now / self._interval + 1e-9) * self._interval + self._interval

    def _run(self) -> None:
        self.tick()  # the baseline every counter is measured from (stamped when it was taken)
        while True:
            boundary = self._next_boundary()
            if self._stop.wait(max(0.0, boundary - self._clock())):
                break
            self.tick(boundary)
        # one last reading, so that the last partial second counts too
        self.tick(self._clock())

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._thread = threading.Thread(target=self._run, name="keelhaul-diagnose", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> Collection:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for collector in self._collectors:
            collector.close()
        return self.collection()

    def collection(self) -> Collection:
        with self._lock:
            ticks = tuple(self._ticks)
        meta = {**self._meta, "dropped_ticks": self.dropped, "interval": self._interval}
        return Collection(ticks=ticks, meta=meta)

"""Run a diagnosis through Prometheus: for ``keelhaul diagnose --prometheus`` (a live
``--duration`` or a past ``--window``) and for ``keelhaul load --diagnose --prometheus``.

The stack is treated as remote: no pid, no file of it is read. Only the load generator
and the diagnosis itself, which run here, are sampled locally (once a second, in a
thread for ``keelhaul diagnose``, in the agent process beside a load run).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from keelhaul.diagnose.analysis import Report, Watched, analyse
from keelhaul.diagnose.collectors.procs import ProcessCollector
from keelhaul.diagnose.loadreport import ClientRun
from keelhaul.diagnose.model import Tick
from keelhaul.diagnose.promapi import PromApi
from keelhaul.diagnose.promsource import LOOKBACK, collect, resolution, settle_seconds
from keelhaul.diagnose.sampler import Sampler
from keelhaul.diagnose.targets import available_cores
from keelhaul.diagnose.tiermap import LOCAL, TierMap, load_tier_map
from keelhaul.errors import DiagnoseError

__all__ = [
    "diagnose_prometheus",
    "generator_sampler",
    "parse_window",
    "prometheus_report",
    "tier_map",
    "wait_for_last_scrape",
]


def tier_map(path: Path | None) -> TierMap:
    return load_tier_map(path) if path is not None else LOCAL


def _instant(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise DiagnoseError(
            f"--window: {text!r} is neither epoch seconds nor an ISO 8601 time"
        ) from None


def parse_window(text: str) -> tuple[float, float]:
    """``START..END`` (epoch seconds or ISO 8601, e.g. ``2026-05-01T10:00:00Z``). Pure."""
    start, sep, end = text.partition("..")
    if not sep or not start.strip() or not end.strip():
        raise DiagnoseError(f"--window {text!r}: write START..END")
    a, b = _instant(start), _instant(end)
    if b <= a:
        raise DiagnoseError(f"--window {text!r}: the end is not after the start")
    return a, b


def generator_sampler(load_pids: Sequence[int], entry_ports: Sequence[int] = ()) -> Sampler:
    """Samples only what runs here: the load generator (by pid or by its connections to
    ``entry_ports``) and the diagnosis."""
    collector = ProcessCollector(
        {}, load_pids=load_pids, entry_ports=entry_ports, cores=available_cores()
    )
    return Sampler([collector], meta={"cores": available_cores()})


def prometheus_report(
    api: PromApi,
    tiers: TierMap,
    start: float,
    end: float,
    *,
    local: Sequence[Tick] = (),
    client: ClientRun | None = None,
    resolution_s: float | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> Report:
    collection = collect(api, tiers, start, end, local=local, resolution_s=resolution_s, say=say)
    # Prometheus saw the stack throughout; the diagnosis itself sampled only the generator
    watched = Watched(local[0].t, local[-1].t, "the load generator") if local else None
    return analyse(collection, client=client, watched=watched)


def wait_for_last_scrape(
    resolution_s: float, end: float, stop: threading.Event | None = None
) -> None:
    """Until the scrapes covering ``end`` are surely stored."""
    remaining = end + settle_seconds(resolution_s) - time.time()
    if remaining > 0:
        (stop or threading.Event()).wait(remaining)


def diagnose_prometheus(
    url: str,
    tiers: TierMap,
    *,
    seconds: float | None = None,
    window: tuple[float, float] | None = None,
    load_pids: Sequence[int] = (),
    entry_ports: Sequence[int] = (),
    stop: threading.Event | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> Report:
    """A past ``window``, or the next ``seconds`` (``stop`` ends early) of the stack."""
    with PromApi(url) as api:
        if window is not None:
            return prometheus_report(api, tiers, *window, say=say)
        assert seconds is not None
        now = time.time()
        step = resolution(api, tiers, now - LOOKBACK, now)
        if seconds < 2 * step:
            raise DiagnoseError(
                f"--duration {seconds:g} is shorter than two scrapes (Prometheus at "
                f"{api.base} has a sample every {step:g} s): watch at least {2 * step:.0f} s"
            )
        sampler = generator_sampler(load_pids, entry_ports)
        event = stop or threading.Event()
        sampler.start()
        start = time.time()
        try:
            say(f"watching through Prometheus at {api.base} for {seconds:g} s")
            event.wait(seconds)
        finally:
            local = sampler.stop().ticks
        end = time.time()
        if end - start < 2 * step:
            raise DiagnoseError(
                f"stopped after {end - start:.0f} s: shorter than two scrapes ({step:g} s each)"
            )
        wait_for_last_scrape(step, end)
        return prometheus_report(
            api, tiers, math.floor(start), end, local=local, resolution_s=step, say=say
        )

"""The proxy's JSON access log, tailed: where each request's time went, per stage.

One line per request (``keelhaul.stack.nginx.ACCESS_LOG_FIELDS``): ``request_time`` is from
the first byte nginx read to the last byte it wrote; ``upstream_connect_time``,
``upstream_header_time`` and ``upstream_response_time`` are the tier behind it. What nginx
adds itself (its queueing, buffering, writing to a slow client) is the difference.

Counted per stage (``stage_of``), cumulative: ``n`` requests, ``rt``/``uc``/``uh``/``ur``
sums of request, upstream connect, header and response seconds (the upstream ones over
``up`` requests that reached an upstream), ``err`` (5xx and 499), ``s499``/``s502``/
``s503``/``s504``, ``bytes``; histograms ``rt``, ``uh`` and ``ov`` (proxy overhead).
Lines are counted when nginx writes them (it buffers up to 1 s: ``flush=1s``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from keelhaul.diagnose.collectors.tail import LogTail
from keelhaul.diagnose.model import HistBuilder, Reading
from keelhaul.diagnose.stages import stage_of

__all__ = ["LATENCY_BOUNDS", "AccessLogAggregate", "NginxLogCollector", "upstream_seconds"]

LATENCY_BOUNDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""nginx times have millisecond resolution: the first bucket holds 0 and 1 ms."""

COUNTED_STATUSES = (499, 502, 503, 504)


def upstream_seconds(value: object) -> float | None:
    """``"0.004"`` → 0.004; ``"0.001, 0.003"`` (a retry) → their sum; ``"-"`` → None."""
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    total, seen = 0.0, False
    for raw in value.replace(":", ",").split(","):
        part = raw.strip()
        if not part or part == "-":
            continue
        try:
            total += float(part)
        except ValueError:
            continue
        seen = True
    return total if seen else None


class AccessLogAggregate:
    """Pure accumulation of parsed access-log lines; :meth:`reading` snapshots it."""

    def __init__(self) -> None:
        self.counters: dict[str, float] = defaultdict(float)
        self.hists: dict[str, HistBuilder] = {}
        self.unparsed = 0

    def _hist(self, key: str) -> HistBuilder:
        h = self.hists.get(key)
        if h is None:
            h = self.hists[key] = HistBuilder(LATENCY_BOUNDS)
        return h

    def add_lines(self, lines: Iterable[bytes]) -> None:
        for raw in lines:
            try:
                doc = json.loads(raw)
            except ValueError:
                self.unparsed += 1
                continue
            if isinstance(doc, dict):
                self.add(doc)
            else:
                self.unparsed += 1

    def add(self, doc: dict[str, object]) -> None:
        stage = stage_of(str(doc.get("method", "")), str(doc.get("uri", "")))
        c = self.counters
        c[f"n.{stage}"] += 1
        status = doc.get("status")
        code = int(status) if isinstance(status, int | float | str) and str(status).isdigit() else 0
        if code >= 500 or code == 499:
            c[f"err.{stage}"] += 1
        if code in COUNTED_STATUSES:
            c[f"s{code}.{stage}"] += 1
        sent = doc.get("body_bytes_sent")
        if isinstance(sent, int | float):
            c[f"bytes.{stage}"] += sent
        rt = doc.get("request_time")
        request_time = float(rt) if isinstance(rt, int | float) else None
        if request_time is not None:
            c[f"rt.{stage}"] += request_time
            self._hist(f"rt.{stage}").observe(request_time)
        header = upstream_seconds(doc.get("upstream_header_time"))
        response = upstream_seconds(doc.get("upstream_response_time"))
        connect = upstream_seconds(doc.get("upstream_connect_time"))
        if response is None:
            return
        c[f"up.{stage}"] += 1
        c[f"ur.{stage}"] += response
        c[f"uc.{stage}"] += connect or 0.0
        c[f"uh.{stage}"] += header if header is not None else response
        self._hist(f"uh.{stage}").observe(header if header is not None else response)
        if request_time is not None:
            self._hist(f"ov.{stage}").observe(max(0.0, request_time - response))

    def reading(self) -> Reading:
        counters = dict(self.counters)
        counters["unparsed"] = float(self.unparsed)
        return Reading(counters=counters, hists={k: h.freeze() for k, h in self.hists.items()})


class NginxLogCollector:
    name = "nginx_log"

    def __init__(self, path: Path) -> None:
        self._tail = LogTail(path)
        self._agg = AccessLogAggregate()

    def collect(self) -> Reading:
        try:
            lines = self._tail.read_lines()
        except OSError as exc:
            return Reading(error=f"cannot read {self._tail.path}: {exc.strerror}")
        self._agg.add_lines(lines)
        reading = self._agg.reading()
        if self._tail.skipped_bytes:
            counters = {**reading.counters, "skipped_bytes": float(self._tail.skipped_bytes)}
            reading = Reading(counters=counters, hists=reading.hists)
        return reading

    def close(self) -> None:
        return None

"""The registry's own Prometheus metrics (its debug address, ``/metrics``).

Kept per tick: ``req.<stage>`` histograms of the handlers' durations (handler + method
mapped to the load kit's stage names), ``storage.<action>`` and ``storage`` (all actions)
histograms of the storage driver, ``inflight`` gauges, the Go runtime's ``goroutines``,
and counters ``cpu`` (process CPU seconds), ``gc`` (seconds in GC pauses), ``s5xx`` and the
blob-descriptor cache's ``cache.<type>`` (Request, Hit, Miss, Error).
"""

from __future__ import annotations

import httpx

from keelhaul.diagnose.collectors import Unreadable, get_text
from keelhaul.diagnose.model import Hist, Reading
from keelhaul.diagnose.prom import Samples, parse_text
from keelhaul.diagnose.stages import registry_stage

__all__ = ["FAMILIES", "RegistryMetricsCollector", "registry_reading"]

FAMILIES = (
    "registry_http_request_duration_seconds",
    "registry_http_in_flight_requests",
    "registry_http_requests_total",
    "registry_storage_action_seconds",
    "registry_storage_cache_total",
    "go_goroutines",
    "go_gc_duration_seconds",
    "process_cpu_seconds_total",
)


def registry_reading(samples: Samples) -> Reading:
    """Pure: one scrape → a Reading."""
    hists: dict[str, Hist] = {}
    by_stage = samples.hists("registry_http_request_duration_seconds", "handler", "method")
    for (handler, method), hist in by_stage.items():
        stage = registry_stage(handler, method)
        hists[f"req.{stage}"] = (
            hists[f"req.{stage}"].plus(hist) if f"req.{stage}" in hists else hist
        )
    storage_all: Hist | None = None
    for (action,), hist in samples.hists("registry_storage_action_seconds", "action").items():
        hists[f"storage.{action}"] = hist
        if storage_all is None:
            storage_all = hist
        elif storage_all.bounds == hist.bounds:
            storage_all = storage_all.plus(hist)
    if storage_all is not None:
        hists["storage"] = storage_all
    gauges: dict[str, float] = {}
    inflight = samples.by("registry_http_in_flight_requests", "handler")
    gauges["inflight"] = sum(inflight.values())
    goroutines = samples.value("go_goroutines")
    if goroutines is not None:
        gauges["goroutines"] = goroutines
    counters: dict[str, float] = {}
    codes = samples.by("registry_http_requests_total", "code")
    counters["s5xx"] = sum(v for (code,), v in codes.items() if code.startswith("5"))
    counters["requests"] = sum(codes.values())
    for name, key in (("process_cpu_seconds_total", "cpu"), ("go_gc_duration_seconds_sum", "gc")):
        value = samples.value(name)
        if value is not None:
            counters[key] = value
    for (kind,), value in samples.by("registry_storage_cache_total", "type").items():
        counters[f"cache.{kind.lower()}"] = value
    return Reading(gauges=gauges, counters=counters, hists=hists)


class RegistryMetricsCollector:
    name = "registry"

    def __init__(self, debug_url: str, timeout: float = 0.5) -> None:
        self._url = f"{debug_url.rstrip('/')}/metrics"
        self._client = httpx.Client(timeout=timeout, trust_env=False)

    def collect(self) -> Reading:
        text = get_text(self._client, self._url)
        if isinstance(text, Unreadable):
            return Reading(error=text.error)
        try:
            return registry_reading(parse_text(text, FAMILIES))
        except ValueError as exc:
            return Reading(error=f"{self._url}: unparsable metrics ({exc})")

    def close(self) -> None:
        self._client.close()

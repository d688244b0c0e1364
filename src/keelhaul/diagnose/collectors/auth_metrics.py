"""The token service's metrics (``keelhaul.auth.metrics``), per tick.

On the local stack they are read straight from gunicorn's multiprocess directory
(``PROMETHEUS_MULTIPROC_DIR``), the files ``/metrics`` itself aggregates: a worker never
has to be free to answer, which is exactly when the numbers matter (a saturated sync
worker would answer a scrape only after the queue ahead of it). Elsewhere ``/metrics`` is
scraped over HTTP.

Kept: gauges ``inflight``, ``capacity`` and ``workers`` (summed over the live workers),
``busy_workers`` (workers whose in-flight requests reached their capacity),
``redis_degraded``; histograms ``request`` and ``stage.<stage>`` / ``stage.authn.<cache>``;
counters ``requests``, ``requests.<outcome>`` and ``cache.<result>``.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from keelhaul.diagnose.collectors import Unreadable, get_text
from keelhaul.diagnose.model import Hist, Reading
from keelhaul.diagnose.prom import Samples, flatten, parse_text

__all__ = ["AuthMetricsCollector", "auth_reading"]


def auth_reading(samples: Samples) -> Reading:
    """Pure: the token service's samples → a Reading."""
    inflight = samples.by("keelhaul_token_inflight_requests", "pid")
    capacity = samples.by("keelhaul_token_worker_capacity", "pid")
    busy = sum(1 for pid, cap in capacity.items() if cap > 0 and inflight.get(pid, 0.0) >= cap)
    gauges = {
        "inflight": sum(inflight.values()),
        "capacity": sum(capacity.values()),
        "workers": float(len(capacity)),
        "busy_workers": float(busy),
    }
    degraded = samples.value("keelhaul_credential_cache_redis_degraded")
    if degraded is not None:
        gauges["redis_degraded"] = degraded
    hists: dict[str, Hist] = {}
    request = samples.hists("keelhaul_token_request_seconds")
    if () in request:
        hists["request"] = request[()]
    for (stage, cache), hist in samples.hists(
        "keelhaul_token_stage_seconds", "stage", "cache"
    ).items():
        total = hists.get(f"stage.{stage}")
        hists[f"stage.{stage}"] = hist if total is None else total.plus(hist)
        if stage == "authn":
            hists[f"stage.authn.{cache or 'none'}"] = hist
    counters: dict[str, float] = {}
    outcomes = samples.by("keelhaul_token_requests_total", "outcome")
    counters["requests"] = sum(outcomes.values())
    for (outcome,), value in outcomes.items():
        counters[f"requests.{outcome}"] = counters.get(f"requests.{outcome}", 0.0) + value
    for (result,), value in samples.by("keelhaul_credential_cache_total", "result").items():
        counters[f"cache.{result}"] = value
    return Reading(gauges=gauges, counters=counters, hists=hists)


class AuthMetricsCollector:
    name = "auth"

    def __init__(self, *, metrics_dir: Path | None, url: str | None, timeout: float = 0.5) -> None:
        self._dir = metrics_dir if metrics_dir is not None and metrics_dir.is_dir() else None
        self._url = f"{url.rstrip('/')}/metrics" if url else None
        self._client = httpx.Client(timeout=timeout, trust_env=False) if self._dir is None else None

    @property
    def source(self) -> str:
        return str(self._dir) if self._dir is not None else (self._url or "-")

    def _samples(self) -> Samples | str:
        if self._dir is not None:
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            try:
                MultiProcessCollector(registry, path=str(self._dir))  # type: ignore[no-untyped-call]
                return flatten(registry.collect())
            except (OSError, ValueError) as exc:
                return f"cannot read {self._dir}: {exc}"
        if self._client is None or self._url is None:
            return "no metrics source"
        text = get_text(self._client, self._url)
        return text.error if isinstance(text, Unreadable) else parse_text(text)

    def collect(self) -> Reading:
        samples = self._samples()
        if isinstance(samples, str):
            return Reading(error=samples)
        return auth_reading(samples)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

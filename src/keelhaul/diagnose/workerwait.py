"""Pure: how long a token request waited for a worker before the app saw it.

Gauges sampled once a second (in-flight requests, the accept queue) miss a queue that
comes and goes between samples, and a gevent or gthread worker queues accepted
connections *inside* the process, where the kernel's accept queue stays empty. What every
worker class shares is the time a request spends between the proxy handing it over and
the app starting it: the proxy's upstream time minus the app's own time. It works for
sync, gthread and gevent workers alike, and for both sources:

* local: nginx's access log (``upstream_header_time`` of the ``token`` stage) minus the
  token service's ``keelhaul_token_request_seconds`` mean;
* Prometheus: the standard nginx exporter has no upstream times, so the load generator's
  own ``token`` time stands in (when the run is ``keelhaul load --diagnose``): an upper
  bound, since it includes the proxy and the network, and said so in the evidence; a
  saturated generator stretches it with its own delays, so the rules then ignore it;
* Prometheus without a load report: its own scrapes of the token service's ``/metrics``
  are requests like the others and wait for a worker the same way (a sync worker answers
  a scrape only after the requests queued before it). The wait is the scrapes' median
  duration in the window minus the fastest one around it (answering with no queue);
  it counts only when the median is at least ``SCRAPE_RATIO`` times that floor, so a
  busy host's jitter is not taken for a queue. A probe once per scrape, not every
  request: coarser, and said so.
"""

from __future__ import annotations

from dataclasses import replace

from keelhaul.diagnose.signals_tiers import AuthView, ProxyView

__all__ = ["SCRAPE_RATIO", "TOKEN_STAGE", "with_worker_wait"]

SCRAPE_RATIO = 3.0
TOKEN_STAGE = "token"  # noqa: S105 - a stage name


def with_worker_wait(
    auth: AuthView | None, proxy: ProxyView | None, client_token_mean: float | None
) -> AuthView | None:
    """``auth`` with ``wait_mean`` / ``wait_basis`` set when an outer observer timed it."""
    if auth is None or auth.app_mean is None:
        return auth
    stage = proxy.stage(TOKEN_STAGE) if proxy is not None else None
    if stage is not None and stage.header_mean is not None:
        return replace(
            auth,
            wait_mean=max(0.0, stage.header_mean - auth.app_mean),
            wait_basis="nginx's upstream time minus the app's time",
            wait_observer="proxy",
        )
    if client_token_mean is not None:
        return replace(
            auth,
            wait_mean=max(0.0, client_token_mean - auth.app_mean),
            wait_basis="the load generator's token time minus the app's time (an upper bound)",
            wait_observer="client",
        )
    if auth.scrape_median is not None and auth.scrape_floor:
        queued = auth.scrape_median >= SCRAPE_RATIO * auth.scrape_floor
        return replace(
            auth,
            wait_mean=max(0.0, auth.scrape_median - auth.scrape_floor) if queued else 0.0,
            wait_observer="scrape",
            wait_basis=(
                f"Prometheus' scrapes of its /metrics took {1000 * auth.scrape_median:.0f} ms "
                f"(median) against {1000 * auth.scrape_floor:.0f} ms with no queue"
            ),
        )
    return auth

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
  bound, since it includes the proxy and the network, and said so in the evidence.
"""

from __future__ import annotations

from dataclasses import replace

from keelhaul.diagnose.signals_tiers import AuthView, ProxyView

__all__ = ["TOKEN_STAGE", "with_worker_wait"]

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
        )
    if client_token_mean is not None:
        return replace(
            auth,
            wait_mean=max(0.0, client_token_mean - auth.app_mean),
            wait_basis="the load generator's token time minus the app's time (an upper bound)",
        )
    return auth

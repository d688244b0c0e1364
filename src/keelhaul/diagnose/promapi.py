"""The Prometheus HTTP API, as much as the diagnosis needs: ``query`` and ``query_range``.

The I/O edge of the Prometheus source. Every failure becomes one
:class:`~keelhaul.errors.DiagnoseError` line that names the server and what went wrong
(never a traceback, never a response body longer than Prometheus' own error string).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from keelhaul.errors import DiagnoseError

__all__ = ["PromApi", "check_url"]

TIMEOUT = 10.0
MAX_ERROR = 200


def check_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]``, without a trailing slash; DiagnoseError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DiagnoseError(
            f"--prometheus {url!r} is not an http(s) URL (e.g. http://127.0.0.1:9090)"
        )
    if parts.username or parts.password:
        raise DiagnoseError("--prometheus: put no credentials in the URL")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class PromApi:
    """A client of one Prometheus server (``base`` from :func:`check_url`)."""

    def __init__(self, base: str, *, timeout: float = TIMEOUT) -> None:
        self.base = check_url(base)
        self._client = httpx.Client(timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PromApi:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.base}{path}"
        try:
            response = self._client.get(url, params=dict(params))
        except httpx.HTTPError as exc:
            raise DiagnoseError(
                f"cannot reach Prometheus at {self.base}: {type(exc).__name__}"
            ) from None
        try:
            doc = response.json()
        except ValueError:
            raise DiagnoseError(
                f"{self.base} does not answer like Prometheus "
                f"(HTTP {response.status_code} to {path}, not JSON)"
            ) from None
        if not isinstance(doc, dict) or doc.get("status") != "success":
            error = str(doc.get("error", "")) if isinstance(doc, dict) else ""
            error = " ".join(error.split())[:MAX_ERROR] or f"HTTP {response.status_code}"
            raise DiagnoseError(f"Prometheus at {self.base} refused {path}: {error}")
        return doc.get("data")

    def query(self, promql: str, at: float) -> tuple[str, list[Any]]:
        """An instant query: (result type, result)."""
        data = self._get("/api/v1/query", {"query": promql, "time": f"{at:.3f}"})
        return _result(data, self.base)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Any]:
        """A range query: the matrix (``[{"metric": {...}, "values": [[t, "v"], ...]}]``)."""
        data = self._get(
            "/api/v1/query_range",
            {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        return _result(data, self.base)[1]


def _result(data: Any, base: str) -> tuple[str, list[Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise DiagnoseError(f"{base} answered a query without a result")
    return str(data.get("resultType", "")), data["result"]

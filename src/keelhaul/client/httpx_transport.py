"""The CLI's transport: one pooled, thread-safe ``httpx.Client``.

Bodies stream both ways: uploads are sent from the blob's chunk iterator with an explicit
``Content-Length`` (no chunked encoding), downloads are iterated as they arrive. httpx
errors become the three transport errors of :mod:`keelhaul.client.transport`. Streamed
``GET``s (blob downloads) go over :mod:`keelhaul.client.bulk_get` instead, six times
cheaper per byte than httpx's 64 KiB reads, unless a proxy applies. Proxy
variables (``HTTPS_PROXY``, ``NO_PROXY``) and ``SSL_CERT_FILE`` are honoured, as by crane.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from keelhaul.client.bulk_get import BulkGetter, proxied
from keelhaul.client.transport import Headers, Request, Response
from keelhaul.errors import (
    ConnectionDropped,
    RegistryClientError,
    RegistryUnreachable,
    TLSFailure,
)

__all__ = ["HttpxTransport"]

READ_CHUNK = 1 << 20


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _translate(exc: httpx.HTTPError, url: str) -> RegistryClientError:
    host = _host(url)
    tls = _tls_cause(exc)
    if tls is not None:
        reason = getattr(tls, "reason", None) or type(tls).__name__
        hint = (
            "; is it a plain-HTTP registry? then use --plain-http"
            if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE")
            else "; for a test registry with a self-signed certificate use --insecure"
            if "CERTIFICATE" in str(reason).upper()
            else ""
        )
        return TLSFailure(f"TLS with {host} failed ({reason}){hint}")
    if isinstance(exc, httpx.ConnectTimeout):
        return RegistryUnreachable(f"cannot reach {host}: connection timed out")
    if isinstance(exc, httpx.ConnectError):
        return RegistryUnreachable(f"cannot reach {host}: {_reason(exc)}")
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionDropped(f"{host} stopped answering mid-request (timed out)")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return ConnectionDropped(f"connection to {host} broke: {_reason(exc)}")
    return RegistryClientError(f"request to {host} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class _HttpxResponse(Response):
    def __init__(self, request: Request, raw: httpx.Response) -> None:
        super().__init__(request, raw.status_code, Headers(raw.headers.multi_items()))
        self._raw = raw

    def _chunks(self) -> Iterator[bytes]:
        try:
            yield from self._raw.iter_bytes()
        except httpx.HTTPError as exc:
            raise _translate(exc, self.request.url) from None

    def _finish(self) -> None:
        self._raw.close()


class HttpxTransport:
    """``verify=False`` is ``--insecure``; ``parallel`` sizes the connection pool."""

    def __init__(
        self,
        *,
        verify: bool | ssl.SSLContext = True,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        parallel: int = 8,
        user_agent: str = "keelhaul",
    ) -> None:
        self._bulk = BulkGetter(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=True),
            timeout=timeout,
            connect_timeout=connect_timeout,
            headers={"User-Agent": user_agent},
        )
        self._client = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=parallel * 2, max_keepalive_connections=parallel),
            headers={"User-Agent": user_agent},
            follow_redirects=False,
            trust_env=True,
        )

    def send(self, request: Request) -> Response:
        if (
            request.stream
            and request.method == "GET"
            and request.body is None
            and not proxied(request.url)
        ):
            return self._bulk.send(request)
        headers = dict(request.headers)
        content: bytes | Iterator[bytes] | None
        body = request.body
        if body is None or isinstance(body, bytes):
            content = body
        else:
            headers["Content-Length"] = str(len(body))
            content = iter(body)
        try:
            built = self._client.build_request(
                request.method, request.url, headers=headers, content=content
            )
            raw = self._client.send(built, stream=True, follow_redirects=request.follow_redirects)
        except httpx.HTTPError as exc:
            raise _translate(exc, request.url) from None
        return _HttpxResponse(request, raw).settled()

    def close(self) -> None:
        self._bulk.close()
        self._client.close()

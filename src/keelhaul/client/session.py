"""The request loop every registry operation goes through, and the session it keeps.

:meth:`RegistrySession._call` adds the ``Authorization`` header the
:class:`~keelhaul.client.tokens.AuthState` knows, follows a ``401`` challenge (one token
fetch, one retry) and returns the response; :meth:`RegistrySession._check` turns an
unexpected status into the registry's error. :class:`~keelhaul.client.registry.RegistryClient`
adds the operations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from keelhaul.client.challenge import parse_challenges
from keelhaul.client.failures import What, registry_error
from keelhaul.client.tokens import AuthState, Credentials, Scopes, TokenMethod, repository_scope
from keelhaul.client.transport import Body, Request, Response, Transport
from keelhaul.errors import ConnectionDropped, RegistryClientError, RegistryUnauthorized

__all__ = ["RegistrySession"]


class RegistrySession:
    """Transport, base URL and authentication state for one registry."""

    def __init__(
        self,
        transport: Transport,
        registry: str,
        *,
        credentials: Credentials | None = None,
        plain_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
        token_method: TokenMethod = "get",  # noqa: S107 - a method name
    ) -> None:
        self.transport = transport
        self.registry = registry
        self.base = f"{'http' if plain_http else 'https'}://{registry}"
        self.auth = AuthState(
            credentials, registry=registry, clock=clock, token_method=token_method
        )
        self._token_lock = threading.Lock()  # parallel transfers share one token fetch
        self._probed = False

    # ------------------------------------------------------------------ request loop

    def _call(
        self,
        method: str,
        url: str,
        name: str,
        scopes: Scopes,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | Body | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> Response:
        fetched = False
        for _ in range(3):
            sent = self.auth.header(scopes)  # one cache lookup on the hot path
            if sent is None and self.auth.scheme == "bearer":
                self._ensure_token(scopes)  # the challenge is known: no 401 round trip
                fetched = True
                sent = self.auth.header(scopes)
            request_headers = dict(headers) if headers else {}
            if sent is not None:
                request_headers["Authorization"] = sent
            response = self.transport.send(
                Request(method, url, name, request_headers, body, stream, follow_redirects)
            )
            if response.status != 401:
                return response
            challenges = parse_challenges(response.headers.get_all("WWW-Authenticate"))
            try:
                scopes = self.auth.unauthorized(challenges, scopes, sent, retried=fetched)
            except RegistryClientError as exc:
                response.fail(str(exc))
                response.close()
                raise
            response.accept()  # the challenge is part of the protocol
            response.close()
            if self.auth.scheme == "bearer":
                self._ensure_token(scopes)
                fetched = True
        raise RegistryUnauthorized(f"{self.registry}: still unauthorized after authenticating")

    def _ensure_token(self, scopes: Scopes) -> None:
        """A good token for ``scopes`` in the cache: one fetch even when several threads
        (or greenlets) find it missing at once."""
        with self._token_lock:
            if self.auth.cached(scopes) is None:
                self._fetch_token(scopes)

    def _fetch_token(self, scopes: Scopes) -> str:
        fetch = self.auth.token_request(scopes)
        for _ in range(2):
            request = Request(fetch.method, fetch.url, "token", fetch.headers, fetch.body)
            with self.transport.send(request) as response:
                try:
                    token = self.auth.token_received(fetch, response.status, response.read())
                except RegistryClientError as exc:
                    response.fail(str(exc))
                    raise
            if token is not None:
                return token.value
            fetch = self.auth.token_request(scopes, use_refresh=False)
        raise RegistryUnauthorized(f"{self.registry}: the token service issued no token")

    def _check(self, response: Response, ok: tuple[int, ...], what: What, subject: str) -> None:
        """Raise the registry's error (and close) unless the status is one of ``ok``."""
        if response.status in ok:
            return
        body = b""
        if not response.request.stream or response.status >= 400:
            try:
                body = response.read()[:65536]
            except ConnectionDropped:
                body = b""
        error = registry_error(
            response.status, body, what=what, subject=subject, registry=self.registry
        )
        response.fail(str(error))
        response.close()
        raise error

    def _url(self, repository: str, kind: str, ref: str = "") -> str:
        return (
            f"{self.base}/v2/{repository}/{kind}/{ref}"
            if ref
            else f"{self.base}/v2/{repository}/{kind}/"
        )

    def _subject(self, repository: str, ref: str) -> str:
        sep = "@" if ":" in ref else ":"
        return f"{self.registry}/{repository}{sep}{ref}"

    # ------------------------------------------------------------------ basics

    def ping(self) -> None:
        """``GET /v2/``: reachable, speaks the API, and (after this) its auth scheme is known."""
        with self._call("GET", f"{self.base}/v2/", "ping", ()) as response:
            self._check(response, (200,), "ping", self.registry)

    def probe(self) -> None:
        """Learn how the registry authenticates (``GET /v2/`` without credentials), once;
        done before work starts in parallel, so that the parallel requests do not each
        collect a ``401`` first."""
        if self.auth.scheme is not None or self._probed:
            return
        with self.transport.send(Request("GET", f"{self.base}/v2/", "ping")) as response:
            if response.status == 401:
                response.accept()
                self.auth.learn(parse_challenges(response.headers.get_all("WWW-Authenticate")))
            else:
                self._check(response, (200,), "ping", self.registry)
        self._probed = True

    def get_token(self, scopes: tuple[str, ...], *, reuse: bool = True) -> str | None:
        """A bearer token for ``scopes`` (``None`` for a registry without token auth);
        ``reuse=False`` always asks the token service (what a load test measures)."""
        self.probe()
        if self.auth.scheme != "bearer":
            return None
        wanted = tuple(sorted(scopes))
        if reuse:
            cached = self.auth.cached(wanted)
            if cached is not None:
                return cached.value
        return self._fetch_token(wanted)

    @staticmethod
    def pull_scopes(repository: str) -> Scopes:
        return (repository_scope(repository, "pull"),)

    @staticmethod
    def push_scopes(repository: str, mount_from: str | None = None) -> Scopes:
        scopes = [repository_scope(repository, "pull", "push")]
        if mount_from and mount_from != repository:
            scopes.append(repository_scope(mount_from, "pull"))
        return tuple(sorted(scopes))

    def close(self) -> None:
        self.transport.close()

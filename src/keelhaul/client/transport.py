"""The one seam between the registry protocol and the network.

:class:`RegistryClient <keelhaul.client.registry.RegistryClient>` builds :class:`Request`
values and hands them to a :class:`Transport`; the transport answers with a
:class:`Response` whose body is read whole (:meth:`Response.read`) or streamed in chunks
(:meth:`Response.iter_bytes`). Two transports exist: httpx for the CLI
(:mod:`keelhaul.client.httpx_transport`) and Locust's FastHttpSession for the load kit
(:mod:`keelhaul.client.locust_transport`).

Every request carries a ``name`` (``"blob GET"``, ``"token"``...) that groups it in
statistics, and every response is *closed* exactly once by the client, after its body has
been consumed: a transport that measures time measures until then, so a stage's time covers
the whole body transfer. Before closing, the client may call :meth:`Response.accept` (an
expected non-2xx, like ``404`` to a ``HEAD`` probing for a blob, or the ``401`` challenge
that starts authentication) or :meth:`Response.fail` (a 200 whose content was wrong).

Transports raise only :class:`~keelhaul.errors.RegistryUnreachable` (no connection),
:class:`~keelhaul.errors.ConnectionDropped` (broke mid-request) and
:class:`~keelhaul.errors.TLSFailure`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

__all__ = ["Body", "Headers", "Request", "Response", "Transport"]

CHUNK = 1 << 20


class Body(Protocol):
    """A request body streamed in chunks with a known length (a blob being uploaded)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...


class Headers:
    """Case-insensitive, multi-valued, read-only response headers."""

    __slots__ = ("_items",)

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        items: dict[str, list[str]] = {}
        for key, value in pairs:
            items.setdefault(key.lower(), []).append(value)
        self._items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._items.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._items.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def as_dict(self) -> dict[str, str]:
        return {k: ", ".join(v) for k, v in self._items.items()}

    def __repr__(self) -> str:
        return f"Headers({sorted(self._items)})"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    name: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: bytes | Body | None = field(default=None, repr=False)
    stream: bool = False
    """The response body will be consumed with :meth:`Response.iter_bytes`."""
    follow_redirects: bool = False
    """Only for GET/HEAD of blobs: storage may redirect; credentials never follow it
    to another origin."""


class Response(abc.ABC):
    """One answer. Subclasses supply :meth:`_chunks` and :meth:`_finish`."""

    def __init__(self, request: Request, status: int, headers: Headers) -> None:
        self.request = request
        self.status = status
        self.headers = headers
        self.received = 0
        self._outcome: str | None = None  # None: judged by status; "" accepted; text: failure
        self._closed = False
        self._body: bytes | None = None

    # --- the body ------------------------------------------------------------------

    @abc.abstractmethod
    def _chunks(self) -> Iterator[bytes]:
        """The body's raw chunks; may raise ConnectionDropped."""

    def iter_bytes(self) -> Iterator[bytes]:
        for chunk in self._chunks():
            self.received += len(chunk)
            yield chunk

    def read(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.iter_bytes())
        return self._body

    def settled(self) -> Response:
        """What a transport's ``send`` returns: read unless the request streams, closed if
        reading fails (one place for every transport)."""
        if not self.request.stream:
            try:
                self.read()
            except BaseException:
                self.close()
                raise
        return self

    # --- outcome for statistics ----------------------------------------------------

    def accept(self) -> None:
        """Count as a success whatever the status (an expected 404 or 401)."""
        self._outcome = ""

    def fail(self, reason: str) -> None:
        self._outcome = reason

    @property
    def failure(self) -> str | None:
        """The failure reported when closing, or ``None`` for a success."""
        if self._outcome is None:
            return None if self.status < 400 else f"HTTP {self.status}"
        return self._outcome or None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finish()

    @abc.abstractmethod
    def _finish(self) -> None:
        """Release the connection and report (time, bytes, :attr:`failure`)."""

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self._outcome is None:
            self._outcome = f"{type(exc).__name__}: {exc}"[:200]
        self.close()


class Transport(Protocol):
    def send(self, request: Request) -> Response:
        """Send; the headers are in, the body is not read yet (unless small and not streamed).
        The caller closes the response."""
        ...

    def close(self) -> None: ...

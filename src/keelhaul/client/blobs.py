"""Where blob bytes come from (uploads) and go to (downloads), as small protocols.

The registry client never opens a file: it asks a :class:`BlobSource` for a byte range and
hands downloaded chunks to a :class:`BlobSink`, which keeps them only once
:meth:`BlobSink.commit` is called after verification, and drops everything on
:meth:`BlobSink.abort`. The OCI layout (:mod:`keelhaul.client.layout`) implements both on
files; the in-memory ones here serve tests and the load kit, whose pulls go to
:class:`DiscardSink` (hashed, counted, not kept).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from keelhaul.client.digest import Verifier
from keelhaul.client.transport import Body

__all__ = [
    "BlobSink",
    "BlobSource",
    "BytesBody",
    "BytesSink",
    "BytesSource",
    "Cancelled",
    "DiscardSink",
    "HashingSink",
    "Progress",
]

CHUNK = 1 << 20


class Cancelled(Exception):
    """The caller's ``cancelled()`` turned true mid-transfer (another transfer of the same
    image failed, or the user interrupted): this one stops and keeps nothing."""


class Progress(Protocol):
    """Told about bytes as they move; must be thread-safe (layers move in parallel)."""

    def add_total(self, n: int) -> None: ...

    def advance(self, n: int) -> None: ...


class BlobSource(Protocol):
    @property
    def size(self) -> int: ...

    def body(self, start: int, end: int) -> Body:
        """Bytes ``[start, end)`` as a re-iterable body of known length."""
        ...


class BlobSink(Protocol):
    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None:
        """The content was verified: keep it."""
        ...

    def abort(self) -> None:
        """Drop whatever was written (a mismatch, an error): nothing partial stays."""
        ...


@runtime_checkable
class HashingSink(Protocol):
    """A sink that can hash what it is given on its own thread (the OCI layout's files):
    the registry client hands it the verifier instead of hashing in the reading loop."""

    def hash_with(self, verifier: Verifier) -> None: ...

    def drain(self) -> None:
        """Return once every chunk was written and hashed."""
        ...


class BytesBody:
    """A slice of in-memory bytes served in chunks (memoryview: no copies)."""

    __slots__ = ("_view", "chunk")

    def __init__(self, data: bytes | memoryview, chunk: int = CHUNK) -> None:
        self._view = memoryview(data)
        self.chunk = chunk

    def __len__(self) -> int:
        return len(self._view)

    def __iter__(self) -> Iterator[bytes]:
        view, step = self._view, self.chunk
        for offset in range(0, len(view), step):
            yield bytes(view[offset : offset + step])


class BytesSource:
    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def body(self, start: int, end: int) -> BytesBody:
        return BytesBody(memoryview(self.data)[start:end])


class BytesSink:
    """Collects the blob; ``data`` is set on commit only."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.data: bytes | None = None

    def write(self, chunk: bytes) -> None:
        self._parts.append(chunk)

    def commit(self) -> None:
        self.data = b"".join(self._parts)
        self._parts = []

    def abort(self) -> None:
        self._parts = []
        self.data = None


class DiscardSink:
    """Counts and forgets: a pull that measures the registry, not the disk."""

    __slots__ = ("committed", "size")

    def __init__(self) -> None:
        self.size = 0
        self.committed = False

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)

    def commit(self) -> None:
        self.committed = True

    def abort(self) -> None:
        self.size = 0

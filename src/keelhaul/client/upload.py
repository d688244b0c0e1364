"""Blob upload state: URLs, offsets and the next step of an upload session. Pure.

An upload starts with ``POST /v2/<name>/blobs/uploads/`` (optionally ``?mount=&from=`` to
borrow the blob from another repository: ``201`` means mounted, ``202`` an ordinary upload
session). The session's ``Location`` changes with every answer and must be followed. Then
either one ``PUT <location>&digest=`` with the whole body (monolithic), or ``PATCH``es with
``Content-Range: <start>-<end>`` whose answers say in ``Range: 0-<last>`` how much the
registry holds, closed by an empty ``PUT ...&digest=``.

After a dropped connection, ``GET <location>`` returns the registry's ``Range``, and the
upload continues from there: nothing already stored is sent again.

``Range: 0-0`` is ambiguous (distribution answers it for 0 *and* 1 stored bytes); it is read
as 0 unless the client knows it sent at least one byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode, urljoin

__all__ = [
    "UploadState",
    "finish_url",
    "mount_url",
    "parse_range_end",
    "plan_upload",
    "start_url",
]

Plan = Literal["monolithic", "chunked"]


def start_url(base: str, repository: str) -> str:
    return f"{base}/v2/{repository}/blobs/uploads/"


def mount_url(base: str, repository: str, digest: str, source: str) -> str:
    return f"{start_url(base, repository)}?{urlencode({'mount': digest, 'from': source})}"


def finish_url(location: str, digest: str) -> str:
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}digest={quote(digest, safe=':')}"


def parse_range_end(value: str | None) -> int | None:
    """The last byte index in ``Range: 0-<last>`` (``bytes=`` tolerated); None if unusable."""
    if not value:
        return None
    text = value.strip().removeprefix("bytes=").strip()
    start, sep, end = text.partition("-")
    if not sep or not start.isdigit() or not end.isdigit():
        return None
    return int(end)


def plan_upload(size: int, monolithic_max: int) -> Plan:
    """Small blobs in one ``PUT``; larger ones ``PATCH``ed (streamed, or in chunks)."""
    return "monolithic" if size <= monolithic_max else "chunked"


@dataclass(slots=True)
class UploadState:
    """One upload session. ``offset`` is what the registry holds; ``location`` is absolute.

    ``chunk_size`` 0 means one ``PATCH`` carrying everything from ``offset`` to the end.
    """

    location: str
    size: int
    chunk_size: int = 0
    offset: int = 0

    @classmethod
    def started(
        cls, request_url: str, location: str | None, size: int, chunk_size: int = 0
    ) -> UploadState:
        """From the answer to the ``POST`` that opened the session."""
        if not location:
            raise ValueError("the registry opened an upload without a Location header")
        return cls(urljoin(request_url, location), size, chunk_size)

    @property
    def done(self) -> bool:
        return self.offset >= self.size

    def next_chunk(self) -> tuple[int, int]:
        """``(start, end)`` (end exclusive) of the next ``PATCH``."""
        if self.done:
            raise ValueError("nothing left to upload")
        if self.chunk_size <= 0:
            return self.offset, self.size
        return self.offset, min(self.size, self.offset + self.chunk_size)

    @staticmethod
    def content_range(start: int, end: int) -> str:
        """distribution's form: inclusive, no ``bytes`` unit."""
        return f"{start}-{end - 1}"

    def _follow(self, location: str | None) -> None:
        if location:
            self.location = urljoin(self.location, location)

    def _offset_from(self, range_header: str | None, expected: int) -> int:
        last = parse_range_end(range_header)
        if last is None:
            return expected
        if last == 0:
            return 1 if expected >= 1 else 0
        return last + 1

    def patched(self, end: int, location: str | None, range_header: str | None) -> None:
        """After a ``202`` to a ``PATCH`` that sent up to ``end``."""
        self._follow(location)
        self.offset = self._offset_from(range_header, end)

    def resumed(self, location: str | None, range_header: str | None) -> None:
        """After ``GET <location>`` (``204``) following a dropped connection."""
        self._follow(location)
        self.offset = min(self._offset_from(range_header, 0), self.size)

    def finish(self, digest: str) -> str:
        """The closing ``PUT`` URL."""
        return finish_url(self.location, digest)

"""Blob files: a download sink that writes and hashes on threads of its own, and an upload
source that reads byte ranges. The OCI layout (:mod:`keelhaul.client.layout`) uses both.

Bytes go to a hidden temporary file next to their final place and are renamed into it only
after the digest verified (:meth:`FileSink.commit`); :meth:`FileSink.abort` removes it, so
a failed or mismatching download leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from keelhaul.client.digest import Verifier
from keelhaul.errors import LayoutError

__all__ = ["PARTIAL_SUFFIX", "FileSink", "FileSource"]

PARTIAL_SUFFIX = ".partial"
READ_CHUNK = 1 << 20
_PIECE = 1 << 20  # bytes per write
_QUEUED = 8  # pieces in flight: bounds memory at ~8 MiB per blob
_MAX_IOV = 512  # chunks per writev, well under IOV_MAX (1024)

Piece = list[bytes]


def _write_all(fd: int, chunks: Piece) -> None:
    """One ``writev`` for the whole piece (no joining copy); finish a short write by hand."""
    done = os.writev(fd, chunks)
    total = sum(len(c) for c in chunks)
    if done == total:
        return
    view = memoryview(b"".join(chunks))[done:]
    while view:
        view = view[os.write(fd, view) :]


class _Stage:
    """A thread applying ``work`` to every piece it is given, in order. A failure is kept
    (and later pieces skipped) for the owner to raise on its thread."""

    def __init__(self, work: Callable[[Piece], object], name: str) -> None:
        self._work = work
        self._queue: queue.Queue[Piece | None] = queue.Queue(maxsize=_QUEUED)
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._work(piece)
                except Exception as exc:  # noqa: BLE001 - raised by the owner
                    self.error = exc

    def put(self, piece: Piece) -> None:
        self._queue.put(piece)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()


class FileSink:
    """A blob being downloaded: a temp file that becomes the blob on :meth:`commit`.

    Chunks are gathered into ~1 MiB pieces and handed to a writer thread (one ``writev``
    per piece) and, once :meth:`hash_with` was called, to a hashing thread. Socket reads,
    hashlib and file writes all release the GIL, so network, hash and disk overlap and a
    pull costs about the slowest of the three, not their sum (measured on 2 busy cores:
    two workers beat one that hashes and writes in turn).
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
        self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._pending: Piece = []
        self._pending_size = 0
        self._stages = [_Stage(self._write_piece, "keelhaul-blob-writer")]
        self._running = True

    def _write_piece(self, piece: Piece) -> None:
        _write_all(self._fd, piece)

    def hash_with(self, verifier: Verifier) -> None:
        """Feed ``verifier`` on a thread of its own; call before the first write."""

        def update(piece: Piece) -> None:
            for chunk in piece:
                verifier.update(chunk)

        self._stages.append(_Stage(update, "keelhaul-blob-hasher"))

    def _raise_if_failed(self) -> None:
        for stage in self._stages:
            if stage.error is not None:
                reason = getattr(stage.error, "strerror", None) or str(stage.error)
                raise LayoutError(f"cannot write {self.tmp}: {reason}")

    def _hand_over(self) -> None:
        piece = self._pending
        self._pending = []
        self._pending_size = 0
        for stage in self._stages:
            stage.put(piece)

    def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= _PIECE or len(self._pending) >= _MAX_IOV:
            self._raise_if_failed()
            self._hand_over()

    def drain(self) -> None:
        """Wait until every byte is written (and hashed); idempotent."""
        if not self._running:
            return
        if self._pending:
            self._hand_over()
        self._stop()
        self._raise_if_failed()

    def _stop(self) -> None:
        if self._running:
            self._running = False
            for stage in self._stages:
                stage.finish()
            os.close(self._fd)

    def commit(self) -> None:
        try:
            self.drain()
        except LayoutError:
            self.abort()
            raise
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        self._pending = []
        self._stop()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


class _FileRange:
    """Bytes ``[start, end)`` of a file, read in chunks each time it is iterated."""

    __slots__ = ("end", "path", "start")

    def __init__(self, path: Path, start: int, end: int) -> None:
        self.path, self.start, self.end = path, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __iter__(self) -> Iterator[bytes]:
        left = self.end - self.start
        with self.path.open("rb", buffering=0) as fh:
            fh.seek(self.start)
            while left > 0:
                chunk = fh.read(min(READ_CHUNK, left))
                if not chunk:
                    raise LayoutError(f"{self.path} is shorter than its descriptor says")
                left -= len(chunk)
                yield chunk


@dataclass(frozen=True)
class FileSource:
    path: Path
    size: int

    def body(self, start: int, end: int) -> _FileRange:
        return _FileRange(self.path, start, end)

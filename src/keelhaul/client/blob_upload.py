"""Getting a blob into a repository: skip it when there, mount it, or upload it.

Monolithic ``PUT`` for small blobs, ``PATCH``es (streamed, or chunks of ``chunk_size``)
for large ones; after a dropped connection the upload resumes from the registry's
``Range``, or starts over in a new session when the registry lost the old one. The
session state itself (URLs, offsets) is the pure :mod:`keelhaul.client.upload`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from keelhaul.client.blobs import BlobSource, Progress
from keelhaul.client.failures import error_codes
from keelhaul.client.session import RegistrySession
from keelhaul.client.tokens import Scopes
from keelhaul.client.transport import Body, Response
from keelhaul.client.upload import UploadState, mount_url, plan_upload, start_url
from keelhaul.errors import ConnectionDropped, DigestMismatch, RegistryClientError

__all__ = ["BlobOutcome", "BlobUploads"]

BlobOutcome = Literal["exists", "mounted", "uploaded"]
_OCTET = "application/octet-stream"


class BlobUploads(RegistrySession):
    """Blob existence checks and uploads; ``chunk_size``, ``monolithic_max`` and
    ``max_resumes`` are set by :class:`~keelhaul.client.registry.RegistryClient`."""

    chunk_size: int = 0
    monolithic_max: int = 4 << 20
    max_resumes: int = 3

    def blob_size(self, repository: str, digest: str, *, push: bool = False) -> int | None:
        """``HEAD``: the blob's size if this repository has it, ``None`` if not."""
        url = self._url(repository, "blobs", digest)
        scopes = self.push_scopes(repository) if push else self.pull_scopes(repository)
        with self._call("HEAD", url, "blob HEAD", scopes, follow_redirects=True) as response:
            if response.status == 404:
                response.accept()
                return None
            self._check(response, (200,), "blob", f"{self.registry}/{repository}@{digest}")
            return int(response.headers.get("Content-Length") or 0)

    def upload_blob(
        self,
        repository: str,
        digest: str,
        source: BlobSource,
        *,
        mount_from: str | None = None,
        check_exists: bool = True,
        progress: Progress | None = None,
    ) -> BlobOutcome:
        """Make the repository hold the blob: skip it if there, mount it if the registry can,
        else upload (one ``PUT``, or ``PATCH``es), resuming after dropped connections."""
        if check_exists and self.blob_size(repository, digest, push=True) is not None:
            if progress is not None:
                progress.advance(source.size)
            return "exists"
        scopes = self.push_scopes(repository, mount_from)
        subject = f"{self.registry}/{repository}@{digest}"
        if mount_from and mount_from != repository:
            url = mount_url(self.base, repository, digest, mount_from)
        else:
            url = start_url(self.base, repository)
        state = self._start_upload(url, scopes, subject, source.size)
        if state is None:
            if progress is not None:
                progress.advance(source.size)
            return "mounted"
        monolithic = plan_upload(source.size, self.monolithic_max) == "monolithic"
        resumes = 0
        while True:
            dropped: ConnectionDropped | None = None
            try:
                if self._send_upload(state, digest, source, scopes, subject, monolithic, progress):
                    return "uploaded"
            except ConnectionDropped as exc:
                dropped = exc
            resumes += 1
            if resumes > self.max_resumes:
                if dropped is not None:
                    raise ConnectionDropped(f"{dropped}; gave up after {resumes} attempts")
                raise RegistryClientError(
                    f"{subject}: the registry lost the upload session {resumes} times; gave up"
                )
            if dropped is None:  # the registry forgot the session (or its offset moved)
                state = self._restart(repository, scopes, subject, source.size)
            else:
                state = self._resume(state, repository, scopes, subject, source.size)

    def _start_upload(
        self, url: str, scopes: Scopes, subject: str, size: int
    ) -> UploadState | None:
        """Open a session (``None``: the blob was mounted instead)."""
        with self._call("POST", url, "upload start", scopes) as response:
            self._check(response, (201, 202), "upload", subject)
            if response.status == 201:
                return None
            return UploadState.started(url, response.headers.get("Location"), size, self.chunk_size)

    def _resume(
        self, state: UploadState, repository: str, scopes: Scopes, subject: str, size: int
    ) -> UploadState:
        """Ask the registry how much it holds and go on from there. distribution refuses a
        session whose stored size no longer matches its signed ``_state`` (a request that
        broke mid-body): then the upload starts over in a new session."""
        with self._call("GET", state.location, "upload status", scopes) as response:
            if response.status == 204:
                state.resumed(response.headers.get("Location"), response.headers.get("Range"))
                return state
            if response.status not in (400, 404):
                self._check(response, (204,), "upload", subject)
        return self._restart(repository, scopes, subject, size)

    def _restart(self, repository: str, scopes: Scopes, subject: str, size: int) -> UploadState:
        fresh = self._start_upload(start_url(self.base, repository), scopes, subject, size)
        if fresh is None:  # cannot happen without ?mount=, but never loop on it
            raise RegistryClientError(f"{subject}: the registry answered a restart with a mount")
        return fresh

    def _upload_answer(self, response: Response, ok: int, subject: str) -> bool:
        """True if ``ok``; False if the session is gone (``404``, ``416``, or
        ``BLOB_UPLOAD_INVALID``: distribution's answer when the stored size no longer matches
        the session's signed state); raises anything else."""
        if response.status == ok:
            return True
        if response.status in (404, 416) or (
            response.status == 400
            and any(code == "BLOB_UPLOAD_INVALID" for code, _ in error_codes(response.read()))
        ):
            response.fail(f"upload session lost (HTTP {response.status})")
            return False
        self._check(response, (ok,), "upload", subject)
        return True  # pragma: no cover - _check raised

    def _send_upload(
        self,
        state: UploadState,
        digest: str,
        source: BlobSource,
        scopes: Scopes,
        subject: str,
        monolithic: bool,
        progress: Progress | None,
    ) -> bool:
        """Send the rest of the blob; False if the registry lost the session."""
        octet = {"Content-Type": _OCTET}
        if not monolithic:
            while not state.done:
                start, end = state.next_chunk()
                headers = {**octet, "Content-Range": UploadState.content_range(start, end)}
                body = _Counted(source.body(start, end), progress)
                with self._call(
                    "PATCH", state.location, "upload PATCH", scopes, headers=headers, body=body
                ) as response:
                    if not self._upload_answer(response, 202, subject):
                        return False
                    state.patched(
                        end, response.headers.get("Location"), response.headers.get("Range")
                    )
        rest: bytes | Body = b""
        if not state.done:
            rest = _Counted(source.body(state.offset, source.size), progress)
        with self._call(
            "PUT", state.finish(digest), "upload PUT", scopes, headers=octet, body=rest
        ) as response:
            if not self._upload_answer(response, 201, subject):
                return False
            stored = response.headers.get("Docker-Content-Digest")
            if stored and stored != digest:
                response.fail("digest mismatch")
                raise DigestMismatch(
                    f"{subject}: the registry stored {stored}", expected=digest, actual=stored
                )
        return True


class _Counted:
    """A body that tells the progress bar about each chunk as it is handed to the socket."""

    __slots__ = ("_body", "_progress")

    def __init__(self, body: Body, progress: Progress | None) -> None:
        self._body = body
        self._progress = progress

    def __len__(self) -> int:
        return len(self._body)

    def __iter__(self) -> Iterator[bytes]:
        progress = self._progress
        for chunk in self._body:
            yield chunk
            if progress is not None:
                progress.advance(len(chunk))

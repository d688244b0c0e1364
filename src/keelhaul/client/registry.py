"""``RegistryClient``: the registry HTTP API, written once over a :class:`Transport`.

The CLI runs it over httpx; the load kit over Locust's FastHttpSession, so a Locust user's
pull is this very code and its requests appear in Locust's statistics under the names
below. Every request goes through the request loop of
:class:`~keelhaul.client.session.RegistrySession` (authentication, challenges).

Request names (statistics): ``ping``, ``token``, ``manifest GET``, ``manifest HEAD``,
``manifest PUT``, ``manifest DELETE``, ``blob GET``, ``blob HEAD``, ``upload start``,
``upload PATCH``, ``upload PUT``, ``upload status``, ``tags``, ``catalog``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from keelhaul.client import transfer
from keelhaul.client.blob_upload import BlobOutcome, BlobUploads
from keelhaul.client.blobs import BlobSink, Cancelled, DiscardSink, HashingSink, Progress
from keelhaul.client.digest import Verifier, digest_of, parse_digest
from keelhaul.client.failures import What
from keelhaul.client.media import (
    DEFAULT_PLATFORM,
    MANIFEST_ACCEPT,
    Descriptor,
    Manifest,
    Platform,
    parse_manifest,
)
from keelhaul.client.paging import first_page_url, next_page_url
from keelhaul.client.tokens import (
    CATALOG_SCOPE,
    Credentials,
    Scopes,
    TokenMethod,
    repository_scope,
)
from keelhaul.client.transport import Transport
from keelhaul.errors import (
    ConnectionDropped,
    DigestMismatch,
    RegistryClientError,
)

if TYPE_CHECKING:
    from keelhaul.client.layout import LayoutWriter
    from keelhaul.client.transfer import ImageSource, PullResult, PushResult

__all__ = ["BlobOutcome", "RegistryClient"]

MIB = 1 << 20


class RegistryClient(BlobUploads):
    """One registry, one set of credentials, one token cache. Thread-safe for concurrent
    operations (the CLI moves layers in parallel); build one per Locust user.

    ``chunk_size`` 0 streams a large blob in one ``PATCH`` (like docker); a positive value
    sends chunks of that size with ``Content-Range``. Blobs up to ``monolithic_max`` go in
    one ``PUT``. ``parallel`` blobs move at once during ``pull_image``/``push_image``.
    """

    def __init__(
        self,
        transport: Transport,
        registry: str,
        *,
        credentials: Credentials | None = None,
        plain_http: bool = False,
        platform: Platform = DEFAULT_PLATFORM,
        clock: Callable[[], float] = time.monotonic,
        token_method: TokenMethod = "get",  # noqa: S107 - a method name
        chunk_size: int = 0,
        monolithic_max: int = 4 * MIB,
        parallel: int = 4,
        max_resumes: int = 3,
    ) -> None:
        super().__init__(
            transport,
            registry,
            credentials=credentials,
            plain_http=plain_http,
            clock=clock,
            token_method=token_method,
        )
        self.platform = platform
        self.chunk_size = chunk_size
        self.monolithic_max = monolithic_max
        self.parallel = max(1, parallel)
        self.max_resumes = max_resumes

    # ------------------------------------------------------------------ manifests

    def head_manifest(self, repository: str, ref: str) -> Descriptor:
        url = self._url(repository, "manifests", ref)
        headers = {"Accept": MANIFEST_ACCEPT}
        scopes = self.pull_scopes(repository)
        with self._call("HEAD", url, "manifest HEAD", scopes, headers=headers) as response:
            self._check(response, (200,), "manifest", self._subject(repository, ref))
            digest = response.headers.get("Docker-Content-Digest") or ""
            if not digest:
                raise RegistryClientError(
                    f"{self.registry} sent no Docker-Content-Digest for {repository}:{ref}"
                )
            media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
            size = int(response.headers.get("Content-Length") or 0)
            return Descriptor(media_type, digest, size)

    def get_manifest(self, repository: str, ref: str, *, accept: str = MANIFEST_ACCEPT) -> Manifest:
        """Fetch and verify: against ``ref`` when it is a digest, else against the
        registry's ``Docker-Content-Digest``."""
        url = self._url(repository, "manifests", ref)
        scopes = self.pull_scopes(repository)
        with self._call("GET", url, "manifest GET", scopes, headers={"Accept": accept}) as response:
            self._check(response, (200,), "manifest", self._subject(repository, ref))
            raw = response.read()
            expected = ref if ":" in ref else response.headers.get("Docker-Content-Digest")
            digest = expected or digest_of(raw)
            try:
                verifier = Verifier(parse_digest(digest), len(raw))
            except ValueError as exc:
                response.fail(str(exc))
                raise RegistryClientError(f"{self.registry}: {exc}") from None
            verifier.update(raw)
            try:
                verifier.check(f"manifest {self._subject(repository, ref)}")
            except DigestMismatch as exc:
                response.fail(str(exc))
                raise
            try:
                return parse_manifest(raw, response.headers.get("Content-Type") or "", digest)
            except RegistryClientError as exc:
                response.fail(str(exc))
                raise

    def put_manifest(self, repository: str, ref: str, raw: bytes, media_type: str) -> str:
        """Store the manifest bytes verbatim; returns the digest the registry reports."""
        url = self._url(repository, "manifests", ref)
        headers = {"Content-Type": media_type}
        scopes = self.push_scopes(repository)
        with self._call("PUT", url, "manifest PUT", scopes, headers=headers, body=raw) as response:
            self._check(response, (201,), "manifest", self._subject(repository, ref))
            return response.headers.get("Docker-Content-Digest") or ""

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete by digest (distribution deletes a manifest, and so every tag on it)."""
        url = self._url(repository, "manifests", digest)
        scopes = (repository_scope(repository, "delete"),)
        with self._call("DELETE", url, "manifest DELETE", scopes) as response:
            self._check(response, (202, 200), "delete", self._subject(repository, digest))

    # ------------------------------------------------------------------ blobs

    def get_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        sink: BlobSink | None = None,
        *,
        verify: bool = True,
        progress: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int:
        """Stream a blob into ``sink``, hashing on the way; commit only if it verifies.
        A dropped connection resumes with a ``Range`` request. Returns the size."""
        out: BlobSink = sink if sink is not None else DiscardSink()
        subject = f"{self.registry}/{repository}@{descriptor.digest}"
        try:
            verifier = Verifier(parse_digest(descriptor.digest), descriptor.size)
        except ValueError as exc:
            raise RegistryClientError(f"{subject}: {exc}") from None
        url = self._url(repository, "blobs", descriptor.digest)
        scopes = self.pull_scopes(repository)
        received, resumes = 0, 0
        # a sink that hashes on its own thread takes the verifier; else hash in this loop
        hashing: HashingSink | None = out if verify and isinstance(out, HashingSink) else None
        if hashing is not None:
            hashing.hash_with(verifier)
        hash_here = verify and hashing is None
        try:
            while True:
                headers = {"Range": f"bytes={received}-"} if received else None
                response = self._call(
                    "GET", url, "blob GET", scopes,
                    headers=headers, stream=True, follow_redirects=True,
                )  # fmt: skip
                with response:
                    self._check(response, (206,) if received else (200,), "blob", subject)
                    try:
                        for chunk in response.iter_bytes():
                            if hash_here:
                                verifier.update(chunk)
                            out.write(chunk)
                            received += len(chunk)
                            if progress is not None:
                                progress.advance(len(chunk))
                            if cancelled is not None and cancelled():
                                response.fail("cancelled")
                                raise Cancelled
                    except ConnectionDropped as exc:
                        resumes += 1
                        response.fail(str(exc))
                        if resumes > self.max_resumes:
                            raise
                        continue
                    if hashing is not None:
                        hashing.drain()
                    if verify:
                        try:
                            verifier.check(f"blob from {self.registry}/{repository}")
                        except DigestMismatch as exc:
                            response.fail("digest mismatch")
                            raise DigestMismatch(
                                f"{exc}; nothing was kept", expected=exc.expected, actual=exc.actual
                            ) from None
                    break
        except BaseException:
            out.abort()
            raise
        out.commit()
        return received

    # ------------------------------------------------------------------ listings

    def _pages(
        self, url: str, name: str, scopes: Scopes, key: str, what: What, subject: str
    ) -> Iterator[str]:
        next_url: str | None = url
        while next_url is not None:
            with self._call("GET", next_url, name, scopes) as response:
                self._check(response, (200,), what, subject)
                try:
                    items = json.loads(response.read()).get(key) or []
                except (ValueError, AttributeError):
                    response.fail("not JSON")
                    raise RegistryClientError(
                        f"{self.registry} answered the {name} request with something else than JSON"
                    ) from None
                next_url = next_page_url(response.headers.get_all("Link"), next_url)
            yield from (str(item) for item in items)

    def iter_tags(self, repository: str, *, page_size: int | None = None) -> Iterator[str]:
        url = first_page_url(f"{self.base}/v2/{repository}/tags/list", page_size)
        scopes = self.pull_scopes(repository)
        subject = f"{self.registry}/{repository}"
        yield from self._pages(url, "tags", scopes, "tags", "tags", subject)

    def tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        return list(self.iter_tags(repository, page_size=page_size))

    def catalog(self, *, page_size: int | None = None) -> list[str]:
        url = first_page_url(f"{self.base}/v2/_catalog", page_size)
        scopes = (CATALOG_SCOPE,)
        return list(self._pages(url, "catalog", scopes, "repositories", "catalog", self.registry))

    # ------------------------------------------------------------------ whole images

    def pull_image(
        self,
        repository: str,
        ref: str,
        *,
        verify: bool = True,
        layout: LayoutWriter | None = None,
        tag: str | None = None,
        platform: Platform | None = None,
        all_platforms: bool = False,
        progress: Progress | None = None,
    ) -> PullResult:
        """Manifest (resolving an index to ``platform``), then every blob in parallel,
        verified; into ``layout`` when given, else hashed and discarded (the load kit)."""
        return transfer.pull_image(
            self, repository, ref,
            verify=verify, layout=layout, tag=tag,
            platform=platform or self.platform, all_platforms=all_platforms, progress=progress,
        )  # fmt: skip

    def push_image(
        self,
        repository: str,
        tag: str,
        image: ImageSource,
        *,
        mount_from: str | None = None,
        progress: Progress | None = None,
    ) -> PushResult:
        """Blobs first (skipped when present, mounted when asked), then manifests."""
        return transfer.push_image(
            self, repository, tag, image, mount_from=mount_from, progress=progress
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

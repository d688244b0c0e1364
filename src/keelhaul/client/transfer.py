"""Whole-image pull and push over :class:`~keelhaul.client.registry.RegistryClient`.

Blobs move in parallel (``client.parallel`` at once, on threads: under Locust's gevent
patching those are greenlets). The first failure stops the others at their next chunk,
their partial files are removed, and that first failure is raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from keelhaul.client.blobs import BlobSource, Cancelled, DiscardSink, Progress
from keelhaul.client.media import MANIFEST_ACCEPT, Descriptor, Manifest, Platform, select_platform
from keelhaul.errors import UnsupportedMediaType

if TYPE_CHECKING:
    from keelhaul.client.layout import LayoutWriter
    from keelhaul.client.registry import BlobOutcome, RegistryClient

__all__ = [
    "Cancelled",
    "ImageSource",
    "PullResult",
    "PushResult",
    "pull_image",
    "push_image",
    "run_parallel",
]

T = TypeVar("T")


class ImageSource(Protocol):
    """An image to push: its top manifest, the image manifests, and their blobs' bytes."""

    @property
    def root(self) -> Manifest: ...

    @property
    def images(self) -> tuple[Manifest, ...]:
        """Image manifests: the root itself, or the index's children."""
        ...

    def blob(self, descriptor: Descriptor) -> BlobSource: ...


@dataclass(frozen=True)
class PullResult:
    digest: str
    media_type: str
    manifests: tuple[str, ...]
    blobs: int
    bytes: int
    skipped: int = 0
    platforms: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "manifests": list(self.manifests),
            "platforms": list(self.platforms),
            "blobs": self.blobs,
            "bytes": self.bytes,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class PushResult:
    digest: str
    media_type: str
    outcomes: dict[str, str] = field(default_factory=dict)
    bytes: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)

    def as_dict(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "uploaded": self.count("uploaded"),
            "mounted": self.count("mounted"),
            "exists": self.count("exists"),
            "bytes_uploaded": self.bytes,
            "blobs": dict(self.outcomes),
        }


def run_parallel(tasks: Sequence[Callable[[Callable[[], bool]], T]], parallel: int) -> list[T]:
    """Run ``task(cancelled)`` for each; results in order. On the first error, the others
    see ``cancelled()`` turn true; the first error is raised once all have stopped."""
    if parallel <= 1 or len(tasks) <= 1:
        return [task(lambda: False) for task in tasks]
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=min(parallel, len(tasks)))
    try:
        futures = [pool.submit(task, stop.is_set) for task in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            errors = [e for f in futures if not f.cancelled() and (e := f.exception()) is not None]
            real = [e for e in errors if not isinstance(e, Cancelled)]
            raise (real or errors)[0]
        return [f.result() for f in futures]
    except BaseException:  # Ctrl-C included: the workers stop at their next chunk
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _unique(manifests: Sequence[Manifest]) -> list[Descriptor]:
    seen: dict[str, Descriptor] = {}
    for manifest in manifests:
        for blob in manifest.blobs():
            seen.setdefault(blob.digest, blob)
    return list(seen.values())


def pull_image(
    client: RegistryClient,
    repository: str,
    ref: str,
    *,
    verify: bool,
    layout: LayoutWriter | None,
    tag: str | None,
    platform: Platform,
    all_platforms: bool,
    progress: Progress | None,
) -> PullResult:
    root = client.get_manifest(repository, ref, accept=MANIFEST_ACCEPT)
    if root.is_index:
        chosen = root.manifests if all_platforms else (select_platform(root, platform),)
        images = tuple(client.get_manifest(repository, d.digest) for d in chosen)
        if any(m.is_index for m in images):
            raise UnsupportedMediaType(f"index {root.digest} nests another index")
        top = root if all_platforms else images[0]
        platforms = tuple(str(d.platform) for d in chosen if d.platform is not None)
    else:
        images, top, platforms = (root,), root, ()
    blobs = _unique(images)
    wanted = [b for b in blobs if layout is None or not layout.has(b)]
    if progress is not None:
        progress.add_total(sum(b.size for b in wanted))

    def fetch(blob: Descriptor) -> Callable[[Callable[[], bool]], int]:
        def run(cancelled: Callable[[], bool]) -> int:
            sink = layout.sink(blob) if layout is not None else DiscardSink()
            return client.get_blob(
                repository, blob, sink, verify=verify, progress=progress, cancelled=cancelled
            )

        return run

    sizes = run_parallel([fetch(b) for b in wanted], client.parallel)
    if layout is not None:
        for manifest in (*images, root) if top is root else images:
            layout.put_manifest(manifest)
        layout.tag(top.descriptor(), tag)
    return PullResult(
        digest=top.digest,
        media_type=top.media_type,
        manifests=tuple(m.digest for m in images),
        blobs=len(blobs),
        bytes=sum(sizes),
        skipped=len(blobs) - len(wanted),
        platforms=platforms,
    )


def push_image(
    client: RegistryClient,
    repository: str,
    tag: str,
    image: ImageSource,
    *,
    mount_from: str | None,
    progress: Progress | None,
) -> PushResult:
    blobs = _unique(image.images)
    if progress is not None:
        progress.add_total(sum(b.size for b in blobs))
    client.probe()

    def send(blob: Descriptor) -> Callable[[Callable[[], bool]], BlobOutcome]:
        def run(cancelled: Callable[[], bool]) -> BlobOutcome:
            if cancelled():
                raise Cancelled
            return client.upload_blob(
                repository, blob.digest, image.blob(blob), mount_from=mount_from, progress=progress
            )

        return run

    outcomes = run_parallel([send(b) for b in blobs], client.parallel)
    root = image.root
    if root.is_index:
        for child in image.images:
            client.put_manifest(repository, child.digest, child.raw, child.media_type)
    client.put_manifest(repository, tag, root.raw, root.media_type)
    by_digest = {b.digest: o for b, o in zip(blobs, outcomes, strict=True)}
    uploaded = sum(b.size for b in blobs if by_digest[b.digest] == "uploaded")
    return PushResult(root.digest, root.media_type, dict(by_digest), uploaded)

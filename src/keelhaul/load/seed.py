"""Test data: seeding before a run, the push namespace, and cleaning it up after.

Runs once per test run, on the master (or the single local process), before any user
starts, over the httpx transport: none of these requests is part of the measurements.

* **Seeding is idempotent.** The test repository gets ``--images`` synthetic images
  (``--layers`` x ``--layer-size``, deterministic from ``--seed``), tagged by their shape
  (``2x1048576-s0``...), so runs with other shapes never overwrite each other's images. A
  tag that already holds the expected digest is left alone; otherwise the image is pushed,
  and the push itself skips every blob the registry has. Only what is missing moves.
* **Pushes go to a per-run repository**, ``<repo>/runs/<run id>``. When the registry
  deletes manifests (probed before the run with a ``DELETE`` of a digest that cannot
  exist: ``404`` means deletes work, ``405`` or a denied scope means they do not), every
  push gets a new tag and every manifest is deleted after the run. Otherwise pushes cycle
  through ``--push-tags`` tags and the report says so. Either way the blobs stay until the
  registry's garbage collection (``registry garbage-collect``), as after any delete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keelhaul.client.images import BuiltImage, build_image
from keelhaul.client.registry import RegistryClient
from keelhaul.client.transfer import run_parallel
from keelhaul.errors import (
    ManifestNotFound,
    RegistryClientError,
    RegistryDenied,
    RegistryNotFound,
    RepositoryNotFound,
)
from keelhaul.load.plan import SeedImage

__all__ = [
    "CleanupOutcome",
    "DeleteSupport",
    "SeedOutcome",
    "build_seed_images",
    "cleanup",
    "deletes_allowed",
    "push_repository",
    "seed",
    "seed_tag",
]

IMPOSSIBLE_DIGEST = "sha256:" + "0" * 64


def seed_tag(layers: int, layer_size: int, seed: int) -> str:
    """The tag of the seeded image of this shape and seed."""
    return f"{layers}x{layer_size}-s{seed}"


def push_repository(repo: str, run_id: str) -> str:
    return f"{repo}/runs/{run_id}"


def build_seed_images(
    count: int, layers: int, layer_size: int, seed: int
) -> list[tuple[str, BuiltImage]]:
    """``count`` deterministic images (seeds ``seed .. seed+count-1``) and their tags."""
    return [
        (
            seed_tag(layers, layer_size, seed + i),
            build_image(layers=layers, layer_size=layer_size, seed=seed + i),
        )
        for i in range(count)
    ]


@dataclass(frozen=True)
class SeedOutcome:
    images: tuple[SeedImage, ...]
    pushed: int
    present: int
    bytes_uploaded: int


def _current_digest(client: RegistryClient, repo: str, tag: str) -> str | None:
    try:
        return client.head_manifest(repo, tag).digest
    except (ManifestNotFound, RepositoryNotFound):
        return None


def seed(
    client: RegistryClient,
    repo: str,
    images: list[tuple[str, BuiltImage]],
    *,
    say: Callable[[str], None] = lambda _m: None,
) -> SeedOutcome:
    """Make ``repo`` hold every image under its tag; push only what is missing."""
    seeded: list[SeedImage] = []
    pushed = present = uploaded = 0
    for tag, image in images:
        size = sum(b.size for m in image.images for b in m.blobs())
        if _current_digest(client, repo, tag) == image.digest:
            present += 1
        else:
            result = client.push_image(repo, tag, image)
            pushed += 1
            uploaded += result.bytes
            say(f"seeded {repo}:{tag} ({result.count('uploaded')} blobs uploaded)")
        seeded.append(SeedImage(tag=tag, digest=image.digest, bytes=size))
    return SeedOutcome(tuple(seeded), pushed, present, uploaded)


@dataclass(frozen=True)
class DeleteSupport:
    allowed: bool
    reason: str


def deletes_allowed(client: RegistryClient, repository: str) -> DeleteSupport:
    """Whether the push identity may delete manifests in ``repository`` (nothing is
    written: the probe deletes a digest that cannot exist)."""
    try:
        client.delete_manifest(repository, IMPOSSIBLE_DIGEST)
    except RegistryNotFound:
        return DeleteSupport(True, "the registry deletes manifests")
    except RegistryDenied:
        return DeleteSupport(False, "the push user may not delete in the push repository")
    except RegistryClientError as exc:
        return DeleteSupport(False, str(exc))
    return DeleteSupport(True, "the registry deletes manifests")


@dataclass(frozen=True)
class CleanupOutcome:
    tags: int
    deleted: int
    failed: int
    remaining: int
    first_error: str | None = None


def cleanup(client: RegistryClient, repository: str, *, parallel: int = 8) -> CleanupOutcome:
    """Delete every manifest tagged in ``repository`` (one run's pushes), then count what
    tags are left (none, when it worked)."""
    try:
        tags = client.tags(repository)
    except RepositoryNotFound:
        return CleanupOutcome(0, 0, 0, 0)
    digests: dict[str, None] = {}
    errors: list[str] = []
    for tag in tags:
        try:
            digests[client.head_manifest(repository, tag).digest] = None
        except RegistryClientError as exc:
            errors.append(str(exc))

    def delete(digest: str) -> Callable[[Callable[[], bool]], bool]:
        def run(_cancelled: Callable[[], bool]) -> bool:
            try:
                client.delete_manifest(repository, digest)
            except ManifestNotFound:
                return True  # deleted meanwhile: the goal is reached
            except RegistryClientError as exc:
                errors.append(str(exc))
                return False
            return True

        return run

    results = run_parallel([delete(d) for d in digests], parallel)
    try:
        remaining = len(client.tags(repository))
    except RepositoryNotFound:
        remaining = 0
    deleted = sum(1 for ok in results if ok)
    return CleanupOutcome(
        len(tags), deleted, len(results) - deleted, remaining, errors[0] if errors else None
    )

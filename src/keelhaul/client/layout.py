"""OCI image layouts on disk (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``).

:class:`LayoutWriter` receives pulled blobs through
:class:`~keelhaul.client.blobfiles.FileSink`, which renames a blob into place only after its
digest verified: a layout never holds a partial or wrong blob, and a pull that fails
leaves no temporary file behind. :func:`read_layout` opens a layout for pushing, and
:func:`write_image` writes a synthetic image (:mod:`keelhaul.client.images`) into one.
A tag is the ``org.opencontainers.image.ref.name`` annotation of an ``index.json`` entry,
which is what ``skopeo copy oci:DIR:TAG`` reads and writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keelhaul.atomicfile import write_bytes
from keelhaul.client.blobfiles import PARTIAL_SUFFIX, FileSink, FileSource
from keelhaul.client.digest import Verifier, parse_digest
from keelhaul.client.images import ImageSpec, build, canonical_json
from keelhaul.client.media import (
    DEFAULT_PLATFORM,
    OCI_INDEX,
    Descriptor,
    Manifest,
    Platform,
    parse_manifest,
)
from keelhaul.errors import DigestMismatch, LayoutError, RegistryClientError

__all__ = [
    "REF_NAME",
    "FileSink",
    "FileSource",
    "LayoutImage",
    "LayoutWriter",
    "layout_tags",
    "read_layout",
    "write_image",
]

REF_NAME = "org.opencontainers.image.ref.name"


def _blob_path(root: Path, digest: str) -> Path:
    try:
        parsed = parse_digest(digest)
    except ValueError as exc:
        raise LayoutError(f"{root}: {exc}") from None
    return root / "blobs" / parsed.algorithm / parsed.hex


class LayoutWriter:
    """Creates the layout on the first write (a pull that fails at the manifest leaves no
    directory behind); safe to use from several threads for distinct blobs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._ready = False
        if root.exists() and not root.is_dir():
            raise LayoutError(f"{root} exists and is not a directory")

    def _ensure(self) -> None:
        if self._ready:
            return
        try:
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            marker = self.root / "oci-layout"
            if not marker.exists():
                write_bytes(marker, canonical_json({"imageLayoutVersion": "1.0.0"}), error=None)
        except OSError as exc:
            raise LayoutError(
                f"cannot write an OCI layout to {self.root}: {exc.strerror}"
            ) from None
        self._ready = True

    def path(self, digest: str) -> Path:
        return _blob_path(self.root, digest)

    def has(self, descriptor: Descriptor) -> bool:
        path = self.path(descriptor.digest)
        try:
            return path.stat().st_size == descriptor.size
        except OSError:
            return False

    def sink(self, descriptor: Descriptor) -> FileSink:
        self._ensure()
        path = self.path(descriptor.digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileSink(path)

    def add(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store a blob from chunks, sha256-addressed (a :class:`BlobStore`)."""
        self._ensure()
        directory = self.root / "blobs" / "sha256"
        tmp = directory / f".{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        hasher = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as fh:
                for chunk in chunks:
                    hasher.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
            final = directory / hasher.hexdigest()
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return f"sha256:{hasher.hexdigest()}", size

    def put_manifest(self, manifest: Manifest) -> None:
        self._ensure()
        path = self.path(manifest.digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            write_bytes(path, manifest.raw, error=LayoutError)

    def tag(self, descriptor: Descriptor, tag: str | None) -> None:
        """Point ``tag`` at ``descriptor`` in ``index.json`` (other entries are kept)."""
        self._ensure()
        entries = [
            e
            for e in _read_index(self.root, missing_ok=True)
            if not (
                (tag is not None and e.get("annotations", {}).get(REF_NAME) == tag)
                or (
                    tag is None
                    and e.get("digest") == descriptor.digest
                    and not e.get("annotations")
                )
            )
        ]
        entry: dict[str, Any] = {
            "mediaType": descriptor.media_type,
            "digest": descriptor.digest,
            "size": descriptor.size,
        }
        if tag is not None:
            entry["annotations"] = {REF_NAME: tag}
        entries.append(entry)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        write_bytes(self.root / "index.json", canonical_json(index), error=LayoutError)


def _read_index(root: Path, *, missing_ok: bool = False) -> list[dict[str, Any]]:
    path = root / "index.json"
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        if missing_ok:
            return []
        raise LayoutError(f"{root} is not an OCI image layout (no index.json)") from None
    except (OSError, ValueError):
        raise LayoutError(f"{path} is not readable JSON") from None
    manifests = data.get("manifests") if isinstance(data, dict) else None
    if not isinstance(manifests, list):
        raise LayoutError(f"{path} has no manifests list")
    return [m for m in manifests if isinstance(m, dict)]


def layout_tags(root: Path) -> list[str]:
    return [
        str(e["annotations"][REF_NAME])
        for e in _read_index(root)
        if isinstance(e.get("annotations"), dict) and REF_NAME in e["annotations"]
    ]


def _read_manifest(root: Path, digest: str, media_type: str) -> Manifest:
    path = _blob_path(root, digest)
    try:
        raw = path.read_bytes()
    except OSError:
        raise LayoutError(f"{root}: manifest {digest} is missing from blobs/") from None
    verifier = Verifier(parse_digest(digest))
    verifier.update(raw)
    try:
        verifier.check(f"manifest {digest} in {root}")
    except DigestMismatch as exc:
        raise LayoutError(str(exc)) from None
    try:
        return parse_manifest(raw, media_type, digest)
    except RegistryClientError as exc:
        raise LayoutError(f"{root}: {exc}") from None


@dataclass(frozen=True)
class LayoutImage:
    """One tagged image of a layout, ready to push (an ``ImageSource``)."""

    root_dir: Path
    root: Manifest
    images: tuple[Manifest, ...]
    tag: str | None = None
    sizes: dict[str, int] = field(default_factory=dict, repr=False)

    def blob(self, descriptor: Descriptor) -> FileSource:
        return FileSource(_blob_path(self.root_dir, descriptor.digest), descriptor.size)


def _choose(root: Path, entries: list[dict[str, Any]], tag: str | None) -> dict[str, Any]:
    def name(e: dict[str, Any]) -> str | None:
        annotations = e.get("annotations")
        return annotations.get(REF_NAME) if isinstance(annotations, dict) else None

    if tag is not None:
        for entry in entries:
            if name(entry) == tag:
                return entry
        tags = ", ".join(sorted(str(n) for e in entries if (n := name(e)))) or "none"
        raise LayoutError(f"{root} has no image tagged {tag!r} (tags: {tags})")
    if len(entries) == 1:
        return entries[0]
    tags = ", ".join(sorted(str(n) for e in entries if (n := name(e)))) or "none"
    if not entries:
        raise LayoutError(f"{root} holds no image")
    raise LayoutError(f"{root} holds {len(entries)} images; name one as DIR:TAG (tags: {tags})")


def read_layout(root: Path, tag: str | None = None) -> LayoutImage:
    """The image ``tag`` names (or the only one); manifests verified, blobs checked present."""
    if not (root / "oci-layout").is_file():
        raise LayoutError(f"{root} is not an OCI image layout (no oci-layout file)")
    entry = _choose(root, _read_index(root), tag)
    top = _read_manifest(root, str(entry.get("digest", "")), str(entry.get("mediaType", "")))
    if top.is_index:
        images = tuple(_read_manifest(root, d.digest, d.media_type) for d in top.manifests)
        if any(m.is_index for m in images):
            raise LayoutError(f"{root}: nested indexes are not supported")
    else:
        images = (top,)
    for manifest in images:
        for blob in manifest.blobs():
            path = _blob_path(root, blob.digest)
            try:
                size = path.stat().st_size
            except OSError:
                raise LayoutError(f"{root}: blob {blob.digest} is missing") from None
            if size != blob.size:
                raise LayoutError(
                    f"{root}: blob {blob.digest} has {size} bytes, its descriptor says {blob.size}"
                )
    return LayoutImage(root, top, images, tag)


def write_image(
    out: Path,
    *,
    layers: int = 1,
    layer_size: int = 1 << 20,
    seed: int = 0,
    tag: str | None = "latest",
    compressible: bool = False,
    platforms: tuple[Platform, ...] = (DEFAULT_PLATFORM,),
) -> str:
    """Write (or add ``tag`` to) the layout ``out``; returns the top manifest's digest."""
    writer = LayoutWriter(out)
    spec = ImageSpec(layers, layer_size, seed, compressible, platforms)
    root, _ = build(spec, writer)
    writer.tag(root.descriptor(), tag)
    return root.digest
